/* SPDX-License-Identifier: MIT */
/* The layer registry. Adding a layer: layers/NAME.c defining NAME_layer_ops, and one X() here. */
#include <errno.h>
#include <string.h>
#include "layer.h"

#define UC_LAYER_LIST(X) X(file) X(stripe) X(concat) X(mirror) X(fault) X(compress) X(nbd)

#define UC_DECLARE(name) extern const struct uc_layer_ops name##_layer_ops;
#define UC_ENTRY(name) &name##_layer_ops,
UC_LAYER_LIST(UC_DECLARE)

static const struct uc_layer_ops *layers[32] = { UC_LAYER_LIST(UC_ENTRY) };

const struct uc_layer_ops *uc_layer_find(const char *name)
{
	for (unsigned int i = 0; i < sizeof(layers) / sizeof(layers[0]) && layers[i]; i++)
		if (!strcmp(layers[i]->name, name))
			return layers[i];
	return NULL;
}

const struct uc_layer_ops *uc_layer_at(unsigned int i)
{
	return i < sizeof(layers) / sizeof(layers[0]) ? layers[i] : NULL;
}

int uc_layer_add(const struct uc_layer_ops *ops)
{
	for (unsigned int i = 0; i < sizeof(layers) / sizeof(layers[0]); i++)
		if (!layers[i]) {
			layers[i] = ops;
			return 0;
		}
	return -ENOSPC;
}

/*
 * Until mirror and compress declare their ctl_keys: the settings their
 * documentation gives for `ctl` (README: scrub/scrub-repair, locate).
 */
static const struct {
	const char *layer;
	const char *const keys[3];
} undeclared_keys[] = {
	{ "mirror", { "scrub", "scrub-repair", NULL } },
	{ "compress", { "locate", NULL } },
};

const char *const *uc_layer_ctl_keys(const struct uc_layer_ops *ops)
{
	static const char *const none[] = { NULL };

	if (ops->ctl_keys)
		return ops->ctl_keys;
	for (unsigned int i = 0; i < sizeof(undeclared_keys) / sizeof(undeclared_keys[0]); i++)
		if (!strcmp(ops->name, undeclared_keys[i].layer))
			return undeclared_keys[i].keys;
	return none;
}

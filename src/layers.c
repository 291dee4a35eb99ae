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

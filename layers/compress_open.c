/* SPDX-License-Identifier: MIT */
/*
 * The compress layer's open and stop: format a new volume, or load the
 * checkpoint and replay the journal; the final checkpoint.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include "compress_int.h"
#include "crc32c.h"
#include "log.h"

/* ---- open: format, or load the checkpoint and replay the journal ---- */

static bool subtree_created(const struct uc_node *n)
{
	if (!n->nr_children)
		return n->created;
	for (unsigned int i = 0; i < n->nr_children; i++)
		if (!subtree_created(n->children[i]))
			return false;
	return true;
}

static int sync_rw(struct uc_node *n, int op, uint64_t blk, void *buf, uint64_t nblk)
{
	return uc_graph_sync_io(n->graph, n->children[0], op, blk_off(blk), buf, nblk * CZ_BLOCK);
}

/* A checkpoint now, synchronously (open, clean stop). Returns 0 or -errno. */
static int ckpt_sync(struct uc_node *n, struct cz *cz, bool clean)
{
	uint8_t *buf = aligned_alloc(CZ_BLOCK, CKPT_RUN);
	unsigned int nr;
	uint64_t dst;
	int ret = 0;

	if (!buf)
		return -ENOMEM;
	cz_ckpt_begin(cz);
	while (!ret && (nr = cz_ckpt_next(cz, buf, &dst)))
		ret = sync_rw(n, UC_OP_WRITE, dst, buf, nr);
	if (!ret)
		ret = sync_rw(n, UC_OP_FLUSH, 0, NULL, 0);
	if (!ret) {
		cz_ckpt_sb(cz, buf, clean);
		ret = sync_rw(n, UC_OP_WRITE, (cz->sb.gen + 1) % 2, buf, 1);
	}
	if (!ret)
		ret = sync_rw(n, UC_OP_FLUSH, 0, NULL, 0);
	if (!ret) {
		cz_ckpt_finish(n, cz);
		cz->sb.flags = clean ? CZ_SB_CLEAN : 0;
	}
	free(buf);
	return ret;
}

static void new_uuid(uint8_t u[16])
{
	if (getrandom(u, 16, 0) != 16)
		for (int i = 0; i < 16; i++)
			u[i] = rand();
	u[6] = (u[6] & 0x0f) | 0x40;
	u[8] = (u[8] & 0x3f) | 0x80;
}

/* The superblock on the child: the valid copy with the higher generation. */
static int read_sb(struct uc_node *n, struct cz_sb *sb, bool *blank)
{
	uint8_t *buf = aligned_alloc(CZ_BLOCK, 2 * CZ_BLOCK);
	struct cz_sb s[2];
	int r[2], ret;

	if (!buf)
		return -ENOMEM;
	ret = sync_rw(n, UC_OP_READ, 0, buf, 2);
	if (!ret) {
		r[0] = cz_sb_decode(&s[0], buf);
		r[1] = cz_sb_decode(&s[1], buf + CZ_BLOCK);
		*blank = all_zero(buf, 2 * CZ_BLOCK);
		if (!r[0] && (r[1] || s[0].gen > s[1].gen))
			*sb = s[0];
		else if (!r[1])
			*sb = s[1];
		else
			ret = r[0] == -ENOENT && r[1] == -ENOENT ? -ENOENT : r[0] == -ENOENT ? r[1] : r[0];
		if (ret == -EPROTO)
			sb->version = r[0] == -EPROTO ? s[0].version : s[1].version;
	}
	free(buf);
	return ret;
}

static int load_map(struct uc_node *n, struct cz *cz)
{
	uint8_t *buf = aligned_alloc(CZ_BLOCK, CKPT_RUN);
	uint64_t nr = cz->sb.map_blocks;
	int ret = 0;

	if (!buf)
		return -ENOMEM;
	for (uint64_t from = 0; !ret && from < nr; from += CKPT_RUN / CZ_BLOCK) {
		unsigned int k = nr - from < CKPT_RUN / CZ_BLOCK ? nr - from : CKPT_RUN / CZ_BLOCK;

		ret = sync_rw(n, UC_OP_READ, cz->sb.map_off + cz->sb.ckpt_area * nr + from, buf, k);
		for (unsigned int i = 0; !ret && i < k; i++) {
			uint64_t first = (from + i) * CZ_MAP_PER_BLOCK;
			unsigned int cnt = cz->nclusters - first < CZ_MAP_PER_BLOCK ?
					   cz->nclusters - first : CZ_MAP_PER_BLOCK;

			if (cz_map_decode(buf + (size_t)i * CZ_BLOCK, &cz->map[first], cnt,
					  cz->sb.ckpt_id, from + i)) {
				uc_err("%s: map block %" PRIu64 " of checkpoint %" PRIu64
				       " is corrupted; refusing to open (see `ublk-compose examine`)",
				       n->name, from + i, cz->sb.ckpt_id);
				ret = -EINVAL;
			}
		}
	}
	free(buf);
	return ret;
}

/* Is e a fragment that can be in this volume? */
static bool frag_ok(const struct cz *cz, const struct cz_entry *e)
{
	switch (cz_kind(e)) {
	case CZ_ZERO:
		return true;
	case CZ_RAW:
	case CZ_ZSTD:
		return e->clen && e->clen <= CZ_PAGE && (cz_kind(e) == CZ_ZSTD || e->clen == CZ_PAGE) &&
		       cz_pblk(e) + cz_fblocks(e) <= cz->sb.data_blocks;
	}
	return false;
}

/* Is e a base copy that can be in this volume? */
static bool base_ok(const struct cz *cz, const struct cz_entry *e)
{
	unsigned int k = cz_kind(e), nb = cz_nblk(e);

	if (k == CZ_ZERO)
		return true;
	return (k == CZ_RAW || k == CZ_ZSTD) && nb && nb <= cz->cluster / CZ_BLOCK &&
	       e->clen <= (uint64_t)nb * CZ_BLOCK && (k == CZ_ZSTD || e->clen == cz->cluster) &&
	       cz_pblk(e) + nb <= cz->sb.data_blocks;
}

/* The checkpoint's pages stored alone. */
static int load_pages(struct uc_node *n, struct cz *cz)
{
	uint64_t left = cz->sb.ckpt_pages, nr = (left + CZ_PG_PER_BLOCK - 1) / CZ_PG_PER_BLOCK;
	uint8_t *buf = aligned_alloc(CZ_BLOCK, CZ_BLOCK);
	struct cz_prec *r = malloc(CZ_PG_PER_BLOCK * sizeof(*r));
	int ret = !buf || !r ? -ENOMEM : 0;

	for (uint64_t i = 0; !ret && i < nr; i++) {
		int k;

		ret = sync_rw(n, UC_OP_READ, cz->sb.pages_off + cz->sb.ckpt_area * cz->sb.page_blocks + i,
			      buf, 1);
		if (ret)
			break;
		k = cz_pages_decode(buf, r, cz->sb.ckpt_id, i);
		if (k != (int)(left < CZ_PG_PER_BLOCK ? left : CZ_PG_PER_BLOCK)) {
			uc_err("%s: page block %" PRIu64 " of checkpoint %" PRIu64 " is corrupted; "
			       "refusing to open (see `ublk-compose examine`)", n->name, i, cz->sb.ckpt_id);
			ret = -EINVAL;
			break;
		}
		for (int x = 0; !ret && x < k; x++) {
			uint64_t c = r[x].page / cz->ppc;

			if (c >= cz->nclusters || !frag_ok(cz, &r[x].e) || cz_ov_find(cz, r[x].page) ||
			    cz_set_page(cz, c, r[x].page % cz->ppc, &r[x].e, r[x].stamp, 0, false)) {
				uc_err("%s: page record %d of block %" PRIu64 " is impossible (page %" PRIu64
				       "); refusing to open", n->name, x, i, r[x].page);
				ret = -EINVAL;
			}
		}
		left -= k;
	}
	free(buf);
	free(r);
	return ret;
}

/*
 * The journal after the checkpoint, as far as it goes: blocks of this
 * volume with the sequence numbers in a row. Calls fn for each (pass 1
 * finds the highest durable mark, pass 2 applies). Returns the block count
 * or -errno; *seq, *slot: where the next block would go.
 */
static int64_t journal_walk(struct uc_node *n, struct cz *cz, uint8_t *buf, struct cz_jent *j,
			    int (*fn)(struct uc_node *, struct cz *, const struct cz_jhdr *,
				      const struct cz_jent *, void *),
			    void *arg, uint64_t *seq, uint64_t *slot)
{
	struct cz_jhdr h;
	int64_t nr = 0;
	int ret;

	*seq = cz->sb.ckpt_seq + 1;
	*slot = cz->sb.journal_head;
	while ((uint64_t)nr < cz->sb.journal_blocks) {
		if ((ret = sync_rw(n, UC_OP_READ, cz->sb.journal_off + *slot, buf, 1)))
			return ret;
		if (cz_journal_decode(buf, *seq, cz->uuid_lo, &h, j) < 0)
			break;	/* the end of the journal */
		if ((ret = fn(n, cz, &h, j, arg)))
			return ret;
		nr++;
		(*seq)++;
		*slot = (*slot + 1) % cz->sb.journal_blocks;
	}
	return nr;
}

static int find_durable(struct uc_node *n, struct cz *cz, const struct cz_jhdr *h,
			const struct cz_jent *j, void *arg)
{
	uint64_t *d = arg;

	(void)n;
	(void)cz;
	(void)j;
	if (h->durable > *d)
		*d = h->durable;
	return 0;
}

struct replay {
	uint64_t durable, applied, skipped;
	uint8_t *data;		/* an extent read back to check it */
};

/* Did the data of e (a base copy, or a fragment) reach the disk? Returns 1, 0, or -errno. */
static int data_made_it(struct uc_node *n, struct cz *cz, const struct cz_entry *e, bool page,
			uint8_t *buf)
{
	unsigned int nblk = page ? cz_fblocks(e) : cz_nblk(e), off = page ? cz_boff(e) : 0;
	int ret = sync_rw(n, UC_OP_READ, cz->sb.data_off + cz_pblk(e), buf, nblk);

	if (ret)
		return ret;
	return uc_crc32c(0, buf + off, e->clen) == e->crc;
}

/*
 * Entries below the durable mark apply as they are; later ones only if
 * their data made it (else that write is lost, as unflushed writes may be),
 * and a base copy is dropped only if every page still has a fragment.
 */
static int apply_block(struct uc_node *n, struct cz *cz, const struct cz_jhdr *h,
		       const struct cz_jent *j, void *arg)
{
	struct replay *r = arg;

	for (unsigned int i = 0; i < h->n; i++) {
		const struct cz_jent *x = &j[i];
		uint64_t entry = h->first + i + 1;	/* the stamp it gave */
		bool page = x->type == CZ_J_PAGE, durable = entry <= r->durable;
		int ret;

		if (x->cluster >= cz->nclusters || x->type < CZ_J_BASE_CLEAR || x->type > CZ_J_PAGE ||
		    (page ? x->page >= cz->ppc || !frag_ok(cz, &x->e) : !base_ok(cz, &x->e)) ||
		    (x->type == CZ_J_BASE && cz_has_data(&x->e))) {
			uc_err("%s: journal block %" PRIu64 " holds an impossible entry (cluster %" PRIu64
			       "); refusing to open", n->name, h->seq, x->cluster);
			return -EINVAL;
		}
		if (!durable && cz_has_data(&x->e)) {
			if ((ret = data_made_it(n, cz, &x->e, page, r->data)) < 0)
				return ret;
			if (!ret) {
				r->skipped++;	/* written to the journal, but its data did not make it */
				continue;
			}
		}
		if (x->type == CZ_J_BASE && cz->ovn[x->cluster] < cz->ppc) {
			r->skipped++;	/* a page write before it was left out: the base still counts */
			continue;
		}
		if (page) {
			if (cz_set_page(cz, x->cluster, x->page, &x->e, entry, 0, false)) {
				if (durable) {
					uc_err("%s: journal block %" PRIu64 " stores more pages alone than "
					       "the volume holds; refusing to open", n->name, h->seq);
					return -EINVAL;
				}
				r->skipped++;
				continue;
			}
		} else {
			cz_set_base(cz, x->cluster, &x->e, x->type == CZ_J_BASE_CLEAR, x->s, 0, false);
		}
		r->applied++;
	}
	return 0;
}

/* Apply the journal after the checkpoint. Returns blocks replayed, or -errno. */
static int64_t replay(struct uc_node *n, struct cz *cz, struct replay *r)
{
	uint8_t *buf = aligned_alloc(CZ_BLOCK, CZ_BLOCK);
	struct cz_jent *j = malloc(CZ_J_PER_BLOCK * sizeof(*j));
	uint64_t seq, slot;
	int64_t ret;

	r->data = aligned_alloc(CZ_BLOCK, cz->cluster > 2 * CZ_BLOCK ? cz->cluster : 2 * CZ_BLOCK);
	if (!buf || !j || !r->data) {
		ret = -ENOMEM;
		goto out;
	}
	ret = journal_walk(n, cz, buf, j, find_durable, &r->durable, &seq, &slot);
	if (ret > 0)
		ret = journal_walk(n, cz, buf, j, apply_block, r, &seq, &slot);
	cz->jseq = seq;
	cz->jslot = slot;
out:
	free(buf);
	free(j);
	free(r->data);
	return ret;
}

/*
 * Every base copy takes its blocks, every fragment counts in its blocks'
 * refs; a block in two base copies, or in a base copy and a fragment, is
 * corruption. The stats start from what is there.
 */
static int build_space(struct uc_node *n, struct cz *cz)
{
	uint64_t stored = 0, alone = 0;

	for (uint64_t c = 0; c < cz->nclusters; c++) {
		const struct cz_entry *e = &cz->map[c];
		unsigned int k = cz_kind(e), nb = cz_nblk(e);

		if (k != CZ_ZERO && (!base_ok(cz, e) || cz_space_take(&cz->space, cz_pblk(e), nb))) {
			uc_err("%s: cluster %" PRIu64 " has a bad or shared extent (block %" PRIu64
			       "+%u); refusing to open", n->name, c, cz_pblk(e), nb);
			return -EINVAL;
		}
		atomic_fetch_add(&cz->nr_kind[k], 1);
		stored += (cz_has_data(e) ? cz->ppc - cz->ovn[c] : 0) + cz->ovn[c] - cz->ovz[c];
	}
	for (uint64_t i = 0; i <= cz->ov_mask; i++) {
		const struct cz_ov *o = &cz->ov[i];

		if (!o->key || !cz_has_data(&o->e))
			continue;
		alone++;
		for (unsigned int b = 0; b < cz_fblocks(&o->e); b++) {
			uint64_t blk = cz_pblk(&o->e) + b;

			if ((!cz->refs[blk] && cz_space_take(&cz->space, blk, 1)) || cz->refs[blk] == UINT16_MAX) {
				uc_err("%s: page %" PRIu64 " has its fragment in a block of a cluster's extent "
				       "(block %" PRIu64 "); refusing to open", n->name, o->key - 1, blk);
				return -EINVAL;
			}
			cz->refs[blk]++;
		}
	}
	atomic_store(&cz->stored_pages, stored);
	atomic_store(&cz->alone_pages, alone);
	return 0;
}

static int cz_alloc_mem(struct cz *cz, const struct uc_graph *g)
{
	cz->map = calloc(cz->nclusters, sizeof(*cz->map));
	cz->busy = calloc(cz->nclusters, sizeof(*cz->busy));
	cz->ovn = calloc(cz->nclusters, sizeof(*cz->ovn));
	cz->ovz = calloc(cz->nclusters, sizeof(*cz->ovz));
	cz->gen = calloc(cz->nclusters, sizeof(*cz->gen));
	cz->jb = calloc(JBUF, sizeof(*cz->jb));
	for (int i = 0; i < 2; i++)
		cz->frees[i].e = calloc(FREES_MAX, sizeof(struct cz_free));
	if (!cz->map || !cz->busy || !cz->ovn || !cz->ovz || !cz->gen || !cz->jb || !cz->frees[0].e ||
	    !cz->frees[1].e)
		return -ENOMEM;
	/* per queue: the device's queues and the one activate uses */
	for (unsigned int i = 0; i <= UC_MAX_QUEUES; i++)
		if ((i < g->dev.queues || i == UC_SYNC_QUEUE_ID) && !(cz->q[i] = czq_new(cz)))
			return -ENOMEM;
	pthread_mutex_init(&cz->lock, NULL);
	cz->rgen = 1;
	return 0;
}

/* What depends on the superblock: the page table, the blocks' fragment counts. */
static int cz_alloc_sb(struct cz *cz)
{
	uint64_t capacity = cz_page_capacity(&cz->sb);

	/* some room stays free for what a replay may keep that the running volume had dropped */
	cz->ov_cap = capacity - capacity / 16;
	cz->refs = calloc(cz->sb.data_blocks, sizeof(*cz->refs));
	if (!cz->refs || cz_ov_init(cz, capacity))
		return -ENOMEM;
	return 0;
}

int compress_activate(struct uc_node *n)
{
	struct cz *cz = n->priv;
	struct replay r = { 0 };
	int64_t replayed = 0;
	bool blank = false;
	char b1[32], b2[32];
	int ret;

	if ((ret = cz_alloc_mem(cz, n->graph))) {
		uc_err("%s: out of memory for the map of %" PRIu64 " clusters", n->name, cz->nclusters);
		return ret;
	}
	ret = read_sb(n, &cz->sb, &blank);
	if (ret == -ENOENT && (blank || subtree_created(n->children[0]))) {
		/* a new volume: an empty map in area B is written as the first checkpoint */
		if (cz_layout(&cz->sb, n->children[0]->size, cz->logical, cz->cluster))
			cz_layout_old(&cz->sb, n->children[0]->size, cz->logical, cz->cluster);	/* parse made sure one fits */
		cz->sb.version = CZ_VERSION;
		new_uuid(cz->sb.uuid);
		cz->sb.ckpt_area = 0;
		cz->sb.gen = 0;
		memcpy(&cz->uuid_lo, cz->sb.uuid, 8);
		cz->jseq = 1;
		cz->jslot = 0;
		uc_info("%s: new volume: %s in clusters of %s over %s", n->name,
			uc_size_str(cz->logical, b1, sizeof(b1)), uc_size_str(cz->cluster, b2, sizeof(b2)),
			uc_size_str(cz->sb.child_size, b1 + 16, 16));
	} else if (ret == -ENOENT) {
		uc_err("%s: the child holds data but no compress superblock; refusing to format it "
		       "(zero its first 8K to start a new volume)", n->name);
		return -EINVAL;
	} else if (ret == -EPROTO) {
		uc_err("%s: the volume is of format %u (this version of ublk-compose reads format %u "
		       "only); refusing to open: copy its data with the version that made it to a new "
		       "volume", n->name, cz->sb.version, CZ_VERSION);
		return -EINVAL;
	} else if (ret) {
		uc_err("%s: %s; refusing to open (see `ublk-compose examine`)", n->name,
		       ret == -EBADMSG ? "corrupted superblock" : strerror(-ret));
		return ret == -EBADMSG ? -EINVAL : ret;
	} else {
		if (cz->sb.cluster != cz->cluster || cz->sb.logical != cz->logical) {
			uc_err("%s: the volume was made with cluster %s and size %s; this config gives "
			       "%s and %s", n->name, uc_size_str(cz->sb.cluster, b1, 16),
			       uc_size_str(cz->sb.logical, b1 + 16, 16), uc_size_str(cz->cluster, b2, 16),
			       uc_size_str(cz->logical, b2 + 16, 16));
			return -EINVAL;
		}
		if (cz->sb.child_size > n->children[0]->size) {
			uc_err("%s: the child is smaller than the volume was made on (%s < %s)", n->name,
			       uc_size_str(n->children[0]->size, b1, 16),
			       uc_size_str(cz->sb.child_size, b2, 16));
			return -EINVAL;
		}
		memcpy(&cz->uuid_lo, cz->sb.uuid, 8);
		if ((ret = cz_alloc_sb(cz)) || (ret = load_map(n, cz)) || (ret = load_pages(n, cz)))
			return ret;
		replayed = replay(n, cz, &r);
		if (replayed < 0)
			return replayed;
		/* stamps count from the entries of this run: the pages there now are older */
		for (uint64_t i = 0; i <= cz->ov_mask; i++)
			cz->ov[i].stamp = 0;
	}
	if (!cz->refs && (ret = cz_alloc_sb(cz)))
		return ret;
	if ((ret = cz_space_init(&cz->space, cz->sb.data_blocks)) || (ret = build_space(n, cz)))
		return ret;
	if (replayed || (!(cz->sb.flags & CZ_SB_CLEAN) && cz->sb.gen))
		uc_info("%s: %s stop: %" PRId64 " journal blocks replayed (%" PRIu64 " map changes, "
			"%" PRIu64 " whose data never reached the disk left out)", n->name,
			cz->sb.flags & CZ_SB_CLEAN ? "clean" : "unclean", replayed, r.applied, r.skipped);
	/* a checkpoint now: the journal starts empty, and the superblock says "in use" */
	if ((ret = ckpt_sync(n, cz, false))) {
		uc_err("%s: cannot write the metadata: %s", n->name, strerror(-ret));
		return ret;
	}
	if (cz->nr_workers)
		cz_workers_start(n, cz);
	uc_dbg("%s: %u worker threads, crc32c by %s", n->name, cz->nr_workers, uc_crc32c_impl());
	cz->active = true;
	return 0;
}

/* A clean stop: a checkpoint marked clean (the queues are gone). */
void compress_deactivate(struct uc_node *n)
{
	struct cz *cz = n->priv;
	int ret;

	if (!cz || !cz->active)
		return;
	cz_workers_stop(cz);
	if (cz_dead(cz))
		return;
	cz->active = false;
	if ((ret = ckpt_sync(n, cz, true)))
		uc_err("%s: the final checkpoint failed: %s (the journal has it)", n->name,
		       strerror(-ret));
}

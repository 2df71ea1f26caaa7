/* The per-firing work of the feature-card pass, in two loops over one layer's
 * activations [n_rows, n_features] (float32, row-major; row = context * length + token).
 *
 * `firings.py` holds the torch reference of both functions and the contract; the
 * tests check that the two give the same totals and histograms bit for bit, and
 * candidates that leave the same tables. Built at first use with the
 * system C compiler (`firings_kernel.py`); without one the torch path runs.
 * Compiled without -ffast-math and with -ffp-contract=off: every float operation
 * here is one IEEE float32 operation, as in torch.
 */
#include <stdint.h>
#include <string.h>
#include <stdlib.h>

static float power_of_two(int64_t k) {
    uint32_t bits = (uint32_t)(k + 127) << 23;
    float out;
    memcpy(&out, &bits, sizeof out);
    return out;
}

static int64_t descending_key(float value) {
    int32_t bits;
    memcpy(&bits, &value, sizeof bits);
    return (((int64_t)1) << 31) - 1 - (int64_t)bits;
}

static int64_t sample_key(int64_t feature, int64_t position) {
    const uint64_t mask = 0xFFFFFFFFu;
    uint64_t x = ((uint64_t)position * 2654435761u + (uint64_t)feature * 40503u) & mask;
    for (int i = 0; i < 3; i++) {
        x = x ^ (x >> 16);
        x = (x * 0x45D9F3Bu) & mask;
    }
    return (int64_t)(x ^ (x >> 16));
}

/* Per feature: firings (activation > 0) added to count[f], the largest activation
 * written to batch_max[f] (0 when none). Token 0 of each context is skipped.
 * Branch-free, so the compiler vectorizes it. Returns the number of firings. */
int64_t firing_totals(const float *acts, int64_t n_rows, int64_t n_features, int64_t length,
                      int64_t *count, float *batch_max) {
    int64_t total = 0;
    memset(batch_max, 0, sizeof(float) * (size_t)n_features);
    for (int64_t row = 0; row < n_rows; row++) {
        if (row % length == 0) continue;
        const float *a = acts + row * n_features;
        int64_t fired = 0;
        for (int64_t f = 0; f < n_features; f++) {
            float v = a[f];
            int64_t positive = v > 0.0f;
            count[f] += positive;
            fired += positive;
            batch_max[f] = v > batch_max[f] ? v : batch_max[f];
        }
        total += fired;
    }
    return total;
}

/* A table slot's best entries of this batch: a max-heap of at most `capacity`
 * entries by (key, row), the worst on top. */
typedef struct {
    int64_t key;
    int64_t row;
    float value;
} Entry;

static int worse(const Entry *a, const Entry *b) {
    return a->key > b->key || (a->key == b->key && a->row > b->row);
}

static void heap_offer(Entry *heap, int32_t *size, int64_t capacity, Entry entry) {
    int64_t i;
    if (*size < capacity) {
        i = (*size)++;
        while (i > 0 && worse(&entry, &heap[(i - 1) / 2])) {
            heap[i] = heap[(i - 1) / 2];
            i = (i - 1) / 2;
        }
        heap[i] = entry;
        return;
    }
    if (!worse(&heap[0], &entry)) return;  /* no better than the worst kept */
    i = 0;
    for (;;) {
        int64_t child = 2 * i + 1;
        if (child >= capacity) break;
        if (child + 1 < capacity && worse(&heap[child + 1], &heap[child])) child++;
        if (!worse(&heap[child], &entry)) break;
        heap[i] = heap[child];
        i = child;
    }
    heap[i] = entry;
}

/* Each slot's kept entries, slot by slot, into the output columns; returns how many. */
static int64_t heap_write(const Entry *heaps, const int32_t *sizes, int64_t n_slots,
                          int64_t capacity, int64_t *row, int64_t *slot, int64_t *key,
                          float *value) {
    int64_t n = 0;
    for (int64_t s = 0; s < n_slots; s++) {
        for (int32_t j = 0; j < sizes[s]; j++) {
            const Entry *e = &heaps[s * capacity + j];
            row[n] = e->row;
            slot[n] = s;
            key[n] = e->key;
            value[n] = e->value;
            n++;
        }
    }
    return n;
}

/* For every firing, in row-major order: add it to histogram[f, bin] (the feature's
 * range [0, 2^exponent[f]) cut into n_bins). A firing whose descending key is <=
 * top_threshold[f] competes for the batch's best top_k of feature f; one whose
 * sample key is <= sample_threshold[s] (s = f * n_intervals + interval) competes for
 * the batch's best per_interval of slot s. Only those winners are written out, as
 * (row, slot, key, value), slot by slot: any other entry has `capacity` better ones
 * in its own batch and cannot enter the table. n_out[0], n_out[1] get the counts;
 * the outputs need room for n_features * top_k and n_features * n_intervals *
 * per_interval entries. Returns 0, or -1 when out of memory. */
int firing_select(const float *acts, int64_t n_rows, int64_t n_features, int64_t length,
                  int64_t first_position, const int64_t *exponent, int64_t n_bins,
                  int64_t log2_bins, int64_t interval_shift, int64_t n_intervals,
                  int64_t top_k, int64_t per_interval, int64_t *histogram,
                  const int64_t *top_threshold, const int64_t *sample_threshold,
                  const int64_t *feature_ids, int64_t *top_row, int64_t *top_slot,
                  int64_t *top_key, float *top_value, int64_t *sample_row,
                  int64_t *sample_slot, int64_t *sample_key_out, float *sample_value,
                  int64_t *n_out) {
    int64_t n_sample_slots = n_features * n_intervals;
    Entry *top = malloc(sizeof(Entry) * (size_t)(n_features * top_k));
    Entry *samples = malloc(sizeof(Entry) * (size_t)(n_sample_slots * per_interval));
    int32_t *top_size = calloc((size_t)n_features, sizeof(int32_t));
    int32_t *sample_size = calloc((size_t)n_sample_slots, sizeof(int32_t));
    if (!top || !samples || !top_size || !sample_size) {
        free(top), free(samples), free(top_size), free(sample_size);
        return -1;
    }
    for (int64_t row = 0; row < n_rows; row++) {
        if (row % length == 0) continue;
        const float *a = acts + row * n_features;
        int64_t position = first_position + row;
        for (int64_t f = 0; f < n_features; f++) {
            float v = a[f];
            if (!(v > 0.0f)) continue;
            float scaled = v * power_of_two(log2_bins - exponent[f]);
            int64_t bin = scaled < (float)n_bins ? (int64_t)scaled : n_bins - 1;
            histogram[f * n_bins + bin] += 1;
            int64_t key = descending_key(v);
            if (key <= top_threshold[f]) {
                Entry e = {key, row, v};
                heap_offer(top + f * top_k, top_size + f, top_k, e);
            }
            int64_t slot = f * n_intervals + (bin >> interval_shift);
            int64_t skey = sample_key(feature_ids[f], position);
            if (skey <= sample_threshold[slot]) {
                Entry e = {skey, row, v};
                heap_offer(samples + slot * per_interval, sample_size + slot, per_interval, e);
            }
        }
    }
    n_out[0] = heap_write(top, top_size, n_features, top_k, top_row, top_slot, top_key,
                          top_value);
    n_out[1] = heap_write(samples, sample_size, n_sample_slots, per_interval, sample_row,
                          sample_slot, sample_key_out, sample_value);
    free(top), free(samples), free(top_size), free(sample_size);
    return 0;
}

/* Offer candidates (row, slot, key, value; n of them) to a table of n_slots slots
 * with `capacity` places each, in place. A slot keeps its `capacity` smallest
 * (key, position); an empty place has position -1. A new entry takes an empty place,
 * or the place of the worst kept entry when it is better than that one, and gets its
 * window: the activations of its feature (slot / per_feature) and the token ids at
 * tokens t - before .. t + after of its context (activation 0 and token -1 outside
 * 1 .. length - 1; -0.0 is stored as 0.0). acts: [n_rows, n_features] as above;
 * input_ids: [n_rows] int64. Returns how many entries were written. */
int64_t table_offer(int64_t n, const int64_t *row, const int64_t *slot, const int64_t *key,
                    const float *value, int64_t first_position, int64_t capacity,
                    int64_t per_feature, int64_t *table_key, int64_t *table_position,
                    float *table_value, float *table_acts, int32_t *table_tokens,
                    const float *acts, const int64_t *input_ids, int64_t n_features,
                    int64_t length, int64_t before, int64_t after) {
    int64_t width = before + 1 + after, written = 0;
    for (int64_t i = 0; i < n; i++) {
        int64_t s = slot[i], position = first_position + row[i];
        int64_t *keys = table_key + s * capacity, *positions = table_position + s * capacity;
        int64_t place = -1;
        for (int64_t j = 0; j < capacity && place < 0; j++)
            if (positions[j] < 0) place = j;
        if (place < 0) {
            place = 0;
            for (int64_t j = 1; j < capacity; j++)
                if (keys[j] > keys[place] || (keys[j] == keys[place] && positions[j] > positions[place]))
                    place = j;
            if (!(key[i] < keys[place] || (key[i] == keys[place] && position < positions[place])))
                continue;  /* no better than the worst kept */
        }
        keys[place] = key[i];
        positions[place] = position;
        table_value[s * capacity + place] = value[i];
        float *window_acts = table_acts + (s * capacity + place) * width;
        int32_t *window_tokens = table_tokens + (s * capacity + place) * width;
        int64_t feature = s / per_feature, context = row[i] / length, t = row[i] % length;
        for (int64_t o = 0; o < width; o++) {
            int64_t u = t - before + o;
            if (u >= 1 && u < length) {
                window_acts[o] = acts[(context * length + u) * n_features + feature] + 0.0f;
                window_tokens[o] = (int32_t)input_ids[context * length + u];
            } else {
                window_acts[o] = 0.0f;
                window_tokens[o] = -1;
            }
        }
        written++;
    }
    return written;
}

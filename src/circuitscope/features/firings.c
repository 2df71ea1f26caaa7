/* The per-firing work of the feature-card pass, in two loops over one layer's
 * activations [n_rows, n_features] (float32, row-major; row = context * length + token).
 *
 * `firings.py` holds the torch reference of both functions and the exact contract;
 * the tests check that the two agree bit for bit. Built at first use with the
 * system C compiler (`firings_kernel.py`); without one the torch path runs.
 * Compiled without -ffast-math and with -ffp-contract=off: every float operation
 * here is one IEEE float32 operation, as in torch.
 */
#include <stdint.h>
#include <string.h>
#include <math.h>

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
 * Returns the number of firings. */
int64_t firing_totals(const float *acts, int64_t n_rows, int64_t n_features, int64_t length,
                      int64_t *count, float *batch_max) {
    int64_t total = 0;
    memset(batch_max, 0, sizeof(float) * (size_t)n_features);
    for (int64_t row = 0; row < n_rows; row++) {
        if (row % length == 0) continue;
        const float *a = acts + row * n_features;
        for (int64_t f = 0; f < n_features; f++) {
            float v = a[f];
            if (v > 0.0f) {
                count[f] += 1;
                total += 1;
                if (v > batch_max[f]) batch_max[f] = v;
            }
        }
    }
    return total;
}

/* For every firing, in row-major order: add it to histogram[f, bin] (the feature's
 * range [0, 2^exponent[f]) cut into n_bins), and write it out as a top candidate
 * when its descending key is <= top_threshold[f], and as a sample candidate when
 * its sample key is <= sample_threshold[f * n_intervals + interval]. Candidates
 * are (row, feature, key, value[, slot]); n_out[0] and n_out[1] receive their counts. */
void firing_select(const float *acts, int64_t n_rows, int64_t n_features, int64_t length,
                   int64_t first_position, const int64_t *exponent, int64_t n_bins,
                   int64_t log2_bins, int64_t interval_shift, int64_t n_intervals,
                   int64_t *histogram, const int64_t *top_threshold,
                   const int64_t *sample_threshold, const int64_t *feature_ids,
                   int64_t *top_row, int64_t *top_feature, int64_t *top_key, float *top_value,
                   int64_t *sample_row, int64_t *sample_slot, int64_t *sample_key_out,
                   float *sample_value, int64_t *n_out) {
    int64_t n_top = 0, n_sample = 0;
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
                top_row[n_top] = row;
                top_feature[n_top] = f;
                top_key[n_top] = key;
                top_value[n_top] = v;
                n_top++;
            }
            int64_t slot = f * n_intervals + (bin >> interval_shift);
            int64_t skey = sample_key(feature_ids[f], position);
            if (skey <= sample_threshold[slot]) {
                sample_row[n_sample] = row;
                sample_slot[n_sample] = slot;
                sample_key_out[n_sample] = skey;
                sample_value[n_sample] = v;
                n_sample++;
            }
        }
    }
    n_out[0] = n_top;
    n_out[1] = n_sample;
}

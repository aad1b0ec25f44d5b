// Philox4x32-10 (Salmon et al. 2011), counter-based: block (counter, key) -> 4 words.
__device__ __forceinline__ unsigned int mulhi32(unsigned int a, unsigned int b) {
    return (unsigned int)(((unsigned long long)a * b) >> 32);
}

__device__ __forceinline__ void philox4x32_10(unsigned int c[4], unsigned int k0,
                                              unsigned int k1) {
    for (int round = 0; round < 10; ++round) {
        const unsigned int hi0 = mulhi32(0xD2511F53u, c[0]), lo0 = 0xD2511F53u * c[0];
        const unsigned int hi1 = mulhi32(0xCD9E8D57u, c[2]), lo1 = 0xCD9E8D57u * c[2];
        c[0] = hi1 ^ c[1] ^ k0;
        c[1] = lo1;
        c[2] = hi0 ^ c[3] ^ k1;
        c[3] = lo0;
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
}

// A 32-bit word -> [0, 1): 24 bits for float, 32 bits for double.
__device__ __forceinline__ float unit_interval(unsigned int x, float) {
    return (float)(x >> 8) * 5.9604644775390625e-08f;
}

__device__ __forceinline__ double unit_interval(unsigned int x, double) {
    return (double)x * 2.3283064365386962890625e-10;
}

template <typename T>
__device__ __forceinline__ void box_muller(unsigned int x0, unsigned int x1, T* z) {
    const T u1 = T(1) - unit_interval(x0, T(0));                    // in (0, 1]
    const T radius = sqrt(T(-2) * log(u1));
    const T angle = T(6.283185307179586) * unit_interval(x1, T(0));
    z[0] = radius * cos(angle);
    z[1] = radius * sin(angle);
}

// Element i of draw number *draws takes word i % 4 of the Philox block with counter
// (i / 4, *draws) and key `key`: the stream depends only on (key, draw, i), never on the
// launch shape. kind: RNG_NORMAL (Box-Muller), RNG_UNIFORM in [a, b), RNG_DROPOUT
// (u >= a ? b : 0, i.e. rate a and scale b = 1 / (1 - a)).
template <typename T>
__global__ void philox_fill(T* __restrict__ out, long long n, unsigned long long key,
                            const unsigned long long* __restrict__ draws, int kind, T a, T b) {
    const unsigned long long draw = *draws;
    const long long blocks = (n + 3) / 4;
    for (long long g = first_index(); g < blocks; g += index_stride()) {
        unsigned int c[4] = {(unsigned int)g, (unsigned int)(g >> 32), (unsigned int)draw,
                              (unsigned int)(draw >> 32)};
        philox4x32_10(c, (unsigned int)key, (unsigned int)(key >> 32));
        T values[4];
        if (kind == RNG_NORMAL) {
            box_muller(c[0], c[1], values);
            box_muller(c[2], c[3], values + 2);
        } else {
            for (int j = 0; j < 4; ++j) {
                const T u = unit_interval(c[j], T(0));
                values[j] = kind == RNG_UNIFORM ? u * (b - a) + a : (u >= a ? b : T(0));
            }
        }
        for (int j = 0; j < 4 && 4 * g + j < n; ++j) out[4 * g + j] = values[j];
    }
}

__global__ void philox_advance(unsigned long long* draws) { *draws += 1; }

// Class labels beside features (conditional GANs). Both kernels address whole C-contiguous
// matrices and a block of their columns, so no strided view is ever passed.

// out[i, out_start + j] = src[i, src_start + j] for the rows * width elements of the block.
template <typename T>
__global__ void copy_columns(const T* __restrict__ src, int src_cols, int src_start,
                             T* __restrict__ out, int out_cols, int out_start, int width,
                             long long total) {
    for (long long e = first_index(); e < total; e += index_stride()) {
        const long long i = e / width;
        const int j = e % width;
        out[i * out_cols + out_start + j] = src[i * src_cols + src_start + j];
    }
}

// out[i, start + j] = [j == min(floor(codes[i]), classes - 1)] for the rows * classes elements.
template <typename T>
__global__ void one_hot(const T* __restrict__ codes, T* __restrict__ out, int out_cols,
                        int start, int classes, long long total) {
    for (long long e = first_index(); e < total; e += index_stride()) {
        const long long i = e / classes;
        const int j = e % classes;
        const int label = smaller((int)floor(codes[i]), classes - 1);
        out[i * out_cols + start + j] = j == label ? T(1) : T(0);
    }
}

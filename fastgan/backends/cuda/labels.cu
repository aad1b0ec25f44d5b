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

// Element e of a matrix with rows of `cols` values, read as groups of `group` values: its row
// i, its group p within the row and its place c within the group.
struct Cell { long long i; int p, c; };

__device__ __forceinline__ Cell cell(long long e, int cols, int group) {
    Cell at;
    at.i = e / cols;
    const int within = e % cols;
    at.p = within / group;
    at.c = within % group;
    return at;
}

// Pixel p of out[i] (out_cols = P (channels + classes) values a row): the image's channels
// values from x[i] (x_cols a row), then the one-hot label labels[i, labels_start ...]
// (labels_cols a row); total = rows * out_cols.
template <typename T>
__global__ void label_maps(const T* __restrict__ x, int x_cols, const T* __restrict__ labels,
                           int labels_cols, int labels_start, T* __restrict__ out, int out_cols,
                           int channels, int classes, long long total) {
    for (long long e = first_index(); e < total; e += index_stride()) {
        const Cell at = cell(e, out_cols, channels + classes);
        out[e] = at.c < channels ? x[at.i * x_cols + at.p * channels + at.c]
                                 : labels[at.i * labels_cols + labels_start + at.c - channels];
    }
}

// out[i, p channels + c] = maps[i, p (channels + classes) + c]; total = rows * out_cols.
template <typename T>
__global__ void image_channels(const T* __restrict__ maps, T* __restrict__ out, int out_cols,
                               int channels, int classes, long long total) {
    const int pixels = out_cols / channels;
    for (long long e = first_index(); e < total; e += index_stride()) {
        const Cell at = cell(e, out_cols, channels);
        out[e] = maps[(at.i * pixels + at.p) * (channels + classes) + at.c];
    }
}

__device__ __forceinline__ long long first_index() {
    return (long long)blockIdx.x * blockDim.x + threadIdx.x;
}

__device__ __forceinline__ long long index_stride() {
    return (long long)gridDim.x * blockDim.x;
}

__device__ __forceinline__ int smaller(int a, int b) { return a < b ? a : b; }

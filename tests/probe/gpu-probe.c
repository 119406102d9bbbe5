/*
 * gpu-probe: what a CUDA program in a container sees of the GPU driver.
 *
 * Loads libcuda.so.1 and libnvidia-ml.so.1 with dlopen, exactly as CUDA
 * programs and nvidia-smi do (through the container's linker cache; no CUDA
 * headers, no link-time dependency), and prints one `key=value` line per
 * fact, for tests and scripts/gpu-check to compare:
 *
 *   libcuda=loaded                       or libcuda=error <dlerror text>
 *   libcuda.path=/usr/lib/x86_64-linux-gnu/libcuda.so.535.104.05
 *   cuDriverGetVersion=12020
 *   cuInit=0                             (100 = CUDA_ERROR_NO_DEVICE, ...)
 *   cuInit.name=CUDA_SUCCESS
 *   cuDeviceGetCount=2                   (only after cuInit=0)
 *   device.0.name=NVIDIA H200
 *   device.0.uuid=GPU-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx
 *   device.0.bus_id=0000:19:00.0
 *   device.0.sm_count=132 / l2_cache=... / shared_memory_per_sm=... / constant_memory=...
 *   libnvidia-ml=loaded
 *   libnvidia-ml.path=...
 *   nvmlInit=0                           (9 = NVML_ERROR_DRIVER_NOT_LOADED, ...)
 *   nvmlInit.text=Success
 *   nvml.driver_version=535.104.05       (only after nvmlInit=0)
 *   nvml.device_count=2
 *
 * Exit status: 0 when every library asked for was loaded (whatever its init
 * answered), 1 when one could not be loaded, 2 on a usage error.
 * Usage: gpu-probe [cuda|nvml]...   (default: both)
 *
 * Built by the tests with `cc -O1 -o gpu-probe gpu-probe.c -ldl` (and -m32
 * for the compat32 checks); static linking is avoided on purpose: the point
 * is the container's own dynamic linker and cache.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <link.h>
#include <stdio.h>
#include <string.h>

typedef int (*fn_int)(int *);
typedef int (*fn_init)(unsigned int);
typedef int (*fn_name)(char *, int, int);
typedef int (*fn_uuid)(unsigned char *, int);
typedef int (*fn_attr)(int *, int, int);
typedef int (*fn_errname)(int, const char **);
typedef int (*fn_void)(void);
typedef const char *(*fn_errstr)(int);
typedef int (*fn_strlen)(char *, unsigned int);
typedef int (*fn_uint)(unsigned int *);

/* CUdevice_attribute values (cuda.h). */
enum {
    ATTR_TOTAL_CONSTANT_MEMORY = 9,
    ATTR_MULTIPROCESSOR_COUNT = 16,
    ATTR_L2_CACHE_SIZE = 38,
    ATTR_MAX_SHARED_MEMORY_PER_MULTIPROCESSOR = 81,
};

static void print_path(const char *key, void *handle)
{
    struct link_map *map = NULL;
    if (dlinfo(handle, RTLD_DI_LINKMAP, &map) == 0 && map != NULL && map->l_name != NULL)
        printf("%s.path=%s\n", key, map->l_name);
}

static void *load(const char *key, const char *soname)
{
    void *h = dlopen(soname, RTLD_NOW | RTLD_LOCAL);
    if (h == NULL) {
        const char *e = dlerror();
        printf("%s=error %s\n", key, e != NULL ? e : "unknown");
        return NULL;
    }
    printf("%s=loaded\n", key);
    print_path(key, h);
    return h;
}

static int probe_cuda(void)
{
    void *h = load("libcuda", "libcuda.so.1");
    if (h == NULL)
        return 1;
    fn_int version = (fn_int)dlsym(h, "cuDriverGetVersion");
    fn_init init = (fn_init)dlsym(h, "cuInit");
    fn_errname errname = (fn_errname)dlsym(h, "cuGetErrorName");
    if (version == NULL || init == NULL) {
        printf("libcuda.symbols=missing\n");
        return 1;
    }
    int v = 0;
    int rc = version(&v);
    if (rc == 0)
        printf("cuDriverGetVersion=%d\n", v);
    else
        printf("cuDriverGetVersion.error=%d\n", rc);
    rc = init(0);
    printf("cuInit=%d\n", rc);
    if (errname != NULL) {
        const char *name = NULL;
        if (errname(rc, &name) == 0 && name != NULL)
            printf("cuInit.name=%s\n", name);
    }
    if (rc != 0)
        return 0;
    fn_int count = (fn_int)dlsym(h, "cuDeviceGetCount");
    fn_name name = (fn_name)dlsym(h, "cuDeviceGetName");
    fn_uuid uuid = (fn_uuid)dlsym(h, "cuDeviceGetUuid");
    fn_name busid = (fn_name)dlsym(h, "cuDeviceGetPCIBusId");
    fn_attr attr = (fn_attr)dlsym(h, "cuDeviceGetAttribute");
    int n = 0;
    if (count == NULL || count(&n) != 0) {
        printf("cuDeviceGetCount.error=1\n");
        return 0;
    }
    printf("cuDeviceGetCount=%d\n", n);
    for (int d = 0; d < n; d++) {
        char buf[256];
        if (name != NULL && name(buf, sizeof buf, d) == 0)
            printf("device.%d.name=%s\n", d, buf);
        unsigned char u[16];
        if (uuid != NULL && uuid(u, d) == 0)
            printf("device.%d.uuid=GPU-%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
                   "%02x%02x%02x%02x%02x%02x\n",
                   d, u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10],
                   u[11], u[12], u[13], u[14], u[15]);
        if (busid != NULL && busid(buf, sizeof buf, d) == 0)
            printf("device.%d.bus_id=%s\n", d, buf);
        static const struct { const char *key; int attr; } attrs[] = {
            {"sm_count", ATTR_MULTIPROCESSOR_COUNT},
            {"l2_cache", ATTR_L2_CACHE_SIZE},
            {"shared_memory_per_sm", ATTR_MAX_SHARED_MEMORY_PER_MULTIPROCESSOR},
            {"constant_memory", ATTR_TOTAL_CONSTANT_MEMORY},
        };
        for (size_t i = 0; attr != NULL && i < sizeof attrs / sizeof attrs[0]; i++) {
            int value = 0;
            if (attr(&value, attrs[i].attr, d) == 0)
                printf("device.%d.%s=%d\n", d, attrs[i].key, value);
        }
    }
    return 0;
}

static int probe_nvml(void)
{
    void *h = load("libnvidia-ml", "libnvidia-ml.so.1");
    if (h == NULL)
        return 1;
    fn_void init = (fn_void)dlsym(h, "nvmlInit_v2");
    fn_errstr errstr = (fn_errstr)dlsym(h, "nvmlErrorString");
    if (init == NULL) {
        printf("libnvidia-ml.symbols=missing\n");
        return 1;
    }
    int rc = init();
    printf("nvmlInit=%d\n", rc);
    if (errstr != NULL && errstr(rc) != NULL)
        printf("nvmlInit.text=%s\n", errstr(rc));
    if (rc != 0)
        return 0;
    fn_strlen version = (fn_strlen)dlsym(h, "nvmlSystemGetDriverVersion");
    fn_uint count = (fn_uint)dlsym(h, "nvmlDeviceGetCount_v2");
    char buf[96];
    if (version != NULL && version(buf, sizeof buf) == 0)
        printf("nvml.driver_version=%s\n", buf);
    unsigned int n = 0;
    if (count != NULL && count(&n) == 0)
        printf("nvml.device_count=%u\n", n);
    fn_void shutdown = (fn_void)dlsym(h, "nvmlShutdown");
    if (shutdown != NULL)
        shutdown();
    return 0;
}

int main(int argc, char **argv)
{
    int cuda = argc == 1, nvml = argc == 1;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "cuda") == 0)
            cuda = 1;
        else if (strcmp(argv[i], "nvml") == 0)
            nvml = 1;
        else {
            fprintf(stderr, "usage: gpu-probe [cuda|nvml]...\n");
            return 2;
        }
    }
    printf("probe.bits=%zu\n", sizeof(void *) * 8);
    int rc = 0;
    if (cuda && probe_cuda() != 0)
        rc = 1;
    if (nvml && probe_nvml() != 0)
        rc = 1;
    fflush(stdout);
    return rc;
}

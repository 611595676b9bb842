/*
 * The C side of benchmarks/vm_map_unmap.py: the same loops pyvfio runs, written the way a C VFIO user
 * would, so the ratio pyvfio/C shows what the Python layer costs on top of the kernel.
 *
 *   vfio_bench type1   GROUP BDF SECONDS [FD]   map+unmap 4 KiB and 2 MiB through VFIO_IOMMU_MAP/UNMAP_DMA,
 *                                               then 4-byte preads of BAR0 offset 0 (edu ident) and config 0
 *   vfio_bench iommufd CDEV SECONDS [FD]        map+unmap 4 KiB and 2 MiB through IOMMU_IOAS_MAP/UNMAP
 *
 * FD: a 2 MiB memfd to map (the pages the Python side maps too); without it, anonymous memory.
 *
 * Each loop runs batches of 16 iterations until SECONDS have passed and prints
 * "RESULT <name> <iterations> <seconds>".  Needs the Linux >= 6.6 UAPI headers (cdev + iommufd).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
#include <linux/iommufd.h>
#include <linux/vfio.h>

#define SZ_4K (4096UL)
#define SZ_2M (2UL << 20)
#define IOVA (0x200000UL)
#define BATCH 16

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(const char *what)
{
	fprintf(stderr, "vfio_bench: %s: %s\n", what, strerror(errno));
	exit(1);
}

/*
 * 2 MiB on a 2 MiB boundary, THP requested, touched so it is populated: the pages of FD (a memfd the
 * Python side made, so both sides pin the very same physical pages) or, with FD < 0, fresh anonymous memory.
 */
static void *aligned_2m(int fd)
{
	uint8_t *p = mmap(NULL, 2 * SZ_2M, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint8_t *a;

	if (p == MAP_FAILED)
		die("mmap");
	a = (uint8_t *)(((uintptr_t)p + SZ_2M - 1) & ~(SZ_2M - 1));
	if (fd >= 0)
		a = mmap(a, SZ_2M, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 0);
	else
		a = mmap(a, SZ_2M, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	if (a == MAP_FAILED)
		die("mmap fixed");
	madvise(a, SZ_2M, MADV_HUGEPAGE);
	memset(a, 0x5a, SZ_2M);
	return a;
}

/*
 * Physically contiguous runs in the 2 MiB buffer, from /proc/self/pagemap (PFNs need root): the type1
 * and iommufd drivers map each contiguous run with one IOMMU call, so without THP the 2 MiB figures
 * depend on how scattered the pages the allocator handed out are.
 */
static int phys_runs(const uint8_t *a)
{
	uint64_t e[SZ_2M / SZ_4K];
	int fd = open("/proc/self/pagemap", O_RDONLY), runs = 1;

	if (fd < 0 || pread(fd, e, sizeof(e), (off_t)((uintptr_t)a / SZ_4K * 8)) != (ssize_t)sizeof(e))
		return -1;
	close(fd);
	for (size_t i = 1; i < SZ_2M / SZ_4K; i++)
		if ((e[i] & ((1ULL << 55) - 1)) != (e[i - 1] & ((1ULL << 55) - 1)) + 1)
			runs++;
	return runs;
}

typedef int (*step_fn)(void *ctx);

static void run(const char *name, step_fn fn, void *ctx, double seconds)
{
	double t0 = now(), t;
	long n = 0;

	do {
		for (int i = 0; i < BATCH; i++)
			if (fn(ctx))
				die(name);
		n += BATCH;
		t = now() - t0;
	} while (t < seconds);
	printf("RESULT %s %ld %.6f\n", name, n, t);
	fflush(stdout);
}

struct type1 {
	int container;
	struct vfio_iommu_type1_dma_map map;
	struct vfio_iommu_type1_dma_unmap unmap;
};

static int type1_step(void *p)
{
	struct type1 *c = p;

	if (ioctl(c->container, VFIO_IOMMU_MAP_DMA, &c->map))
		return -1;
	return ioctl(c->container, VFIO_IOMMU_UNMAP_DMA, &c->unmap) ? -1 : 0;
}

struct ioas {
	int fd;
	struct iommu_ioas_map map;
	struct iommu_ioas_unmap unmap;
};

static int ioas_step(void *p)
{
	struct ioas *c = p;

	if (ioctl(c->fd, IOMMU_IOAS_MAP, &c->map))
		return -1;
	return ioctl(c->fd, IOMMU_IOAS_UNMAP, &c->unmap) ? -1 : 0;
}

struct rd {
	int fd;
	off_t off;
};

static int read_step(void *p)
{
	struct rd *r = p;
	uint32_t v;

	return pread(r->fd, &v, 4, r->off) == 4 ? 0 : -1;
}

static off_t region_offset(int dev, unsigned int index)
{
	struct vfio_region_info info = { .argsz = sizeof(info), .index = index };

	if (ioctl(dev, VFIO_DEVICE_GET_REGION_INFO, &info))
		die("VFIO_DEVICE_GET_REGION_INFO");
	return (off_t)info.offset;
}

static void bench_type1(const char *group_path, const char *bdf, double seconds, uint8_t *buf)
{
	struct type1 c = { 0 };
	struct rd r;
	int group, dev;
	size_t sizes[2] = { SZ_4K, SZ_2M };
	const char *names[2] = { "type1.map_unmap.4k", "type1.map_unmap.2m" };

	c.container = open("/dev/vfio/vfio", O_RDWR | O_CLOEXEC);
	group = open(group_path, O_RDWR | O_CLOEXEC);
	if (c.container < 0 || group < 0)
		die("open container/group");
	if (ioctl(group, VFIO_GROUP_SET_CONTAINER, &c.container))
		die("VFIO_GROUP_SET_CONTAINER");
	if (ioctl(c.container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU))
		die("VFIO_SET_IOMMU");
	dev = ioctl(group, VFIO_GROUP_GET_DEVICE_FD, bdf);
	if (dev < 0)
		die("VFIO_GROUP_GET_DEVICE_FD");
	for (int i = 0; i < 2; i++) {
		c.map = (struct vfio_iommu_type1_dma_map){ .argsz = sizeof(c.map),
			.flags = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE,
			.vaddr = (uintptr_t)buf, .iova = IOVA, .size = sizes[i] };
		c.unmap = (struct vfio_iommu_type1_dma_unmap){ .argsz = sizeof(c.unmap), .iova = IOVA,
			.size = sizes[i] };
		run(names[i], type1_step, &c, seconds);
	}
	r = (struct rd){ dev, region_offset(dev, VFIO_PCI_BAR0_REGION_INDEX) };
	run("region.bar0_ident", read_step, &r, seconds);
	r = (struct rd){ dev, region_offset(dev, VFIO_PCI_CONFIG_REGION_INDEX) };
	run("region.config", read_step, &r, seconds);
	close(dev);
	close(group);
	close(c.container);
}

static void bench_iommufd(const char *cdev, double seconds, uint8_t *buf)
{
	struct ioas c = { 0 };
	struct iommu_ioas_alloc alloc = { .size = sizeof(alloc) };
	struct vfio_device_bind_iommufd bind = { .argsz = sizeof(bind) };
	struct vfio_device_attach_iommufd_pt attach = { .argsz = sizeof(attach) };
	size_t sizes[2] = { SZ_4K, SZ_2M };
	const char *names[2] = { "iommufd.map_unmap.4k", "iommufd.map_unmap.2m" };
	int dev;

	c.fd = open("/dev/iommu", O_RDWR | O_CLOEXEC);
	dev = open(cdev, O_RDWR | O_CLOEXEC);
	if (c.fd < 0 || dev < 0)
		die("open /dev/iommu or the cdev");
	if (ioctl(c.fd, IOMMU_IOAS_ALLOC, &alloc))
		die("IOMMU_IOAS_ALLOC");
	bind.iommufd = c.fd;
	if (ioctl(dev, VFIO_DEVICE_BIND_IOMMUFD, &bind))
		die("VFIO_DEVICE_BIND_IOMMUFD");
	attach.pt_id = alloc.out_ioas_id;
	if (ioctl(dev, VFIO_DEVICE_ATTACH_IOMMUFD_PT, &attach))
		die("VFIO_DEVICE_ATTACH_IOMMUFD_PT");
	for (int i = 0; i < 2; i++) {
		c.map = (struct iommu_ioas_map){ .size = sizeof(c.map), .ioas_id = alloc.out_ioas_id,
			.flags = IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE,
			.user_va = (uintptr_t)buf, .length = sizes[i], .iova = IOVA };
		c.unmap = (struct iommu_ioas_unmap){ .size = sizeof(c.unmap), .ioas_id = alloc.out_ioas_id,
			.iova = IOVA, .length = sizes[i] };
		run(names[i], ioas_step, &c, seconds);
	}
	close(dev);
	close(c.fd);
}

int main(int argc, char **argv)
{
	uint8_t *buf;

	if ((argc == 5 || argc == 6) && !strcmp(argv[1], "type1")) {
		buf = aligned_2m(argc == 6 ? atoi(argv[5]) : -1);
		printf("PHYSRUNS %d\n", phys_runs(buf));
		bench_type1(argv[2], argv[3], atof(argv[4]), buf);
	} else if ((argc == 4 || argc == 5) && !strcmp(argv[1], "iommufd")) {
		buf = aligned_2m(argc == 5 ? atoi(argv[4]) : -1);
		printf("PHYSRUNS %d\n", phys_runs(buf));
		bench_iommufd(argv[2], atof(argv[3]), buf);
	} else {
		fprintf(stderr, "usage: %s type1 GROUP BDF SECONDS [FD] | iommufd CDEV SECONDS [FD]\n", argv[0]);
		return 2;
	}
	return 0;
}

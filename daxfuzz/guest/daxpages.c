/* daxpages: raw struct page dumps of the pages a step touched, read from /proc/kcore.
 *
 * Only the guest helper daxop has this (daxop.c includes it after daxlib.c); the
 * reproducers of `daxfuzz kernel repro` do not (they are daxlib.c + a table).  Two
 * commands, written by daxfuzz/guest/pages.py into `kernel run`/`kernel fuzz` programs:
 *
 *   pagescfg PGSIZE INFOOFF MAPOFF HOSTOFF INOOFF NFILES NPG OFF0 .. OFF{NPG-1}
 *       struct page's size, the offsets of compound_info and mapping in it,
 *       address_space.host and inode.i_ino (from the kernel's BTF, on the host), the
 *       files f0.. and the real byte offset of each model page.  Finds the kernel's
 *       layout (/proc/kallsyms: page_offset_base, vmemmap_base, init_top_pgt; cached
 *       in /tmp for the boot), /proc/kcore's segments and the pmem data start
 *       (/sys/bus/nd/devices/pfn* /resource), prints
 *       "@@G cfg ok=1 levels=L vmemmap=0x.. pmem=0x.. files=I:INO,.. ms=T" or
 *       "@@G cfg ok=0 error=WHY" (every later `pages` is then silent).
 *   pages NK INO PG MODE INO PG MODE ...
 *       after a step: FIEMAP of every file (each model page's block now, and the one
 *       it had before its last change), then for each requested model page (file INO,
 *       model page PG) "@@G step=N key=INO:PG pfn=P st=S sh=0|1": MODE 0 its block now
 *       (S cur, or hole); MODE 1 the block it had before (freed, CoW-replaced: S gone,
 *       busy when another file page has that block now, none when it never changed);
 *       sh is FIEMAP_EXTENT_SHARED.  Then each struct page needed, once:
 *       "@@G step=N pfn=P raw=HEX" -- the page, its compound head and the head's next
 *       page (the folio's order, large/entire mapcount and pincount live there) --,
 *       "@@G step=N as=0xPTR ino=I" for each mapping seen (address_space.host->i_ino),
 *       "@@G step=N done reads=R us=T".
 *       While a killed call other than umount is still running (6.1's spinning reflink
 *       holds inode locks FIEMAP needs) only "@@G step=N error=..." instead.
 *
 * How a struct page is found.  pfn = (pmem data start + FIEMAP fe_physical + offset in
 * the extent) >> 12; its struct page is at vmemmap_base + pfn * PGSIZE.  /proc/kcore's
 * vmemmap segments cover only System RAM's pfns, so that virtual address is translated
 * by walking the kernel page tables (init_top_pgt, 4 or 5 levels, 2 MiB/1 GiB leaves),
 * each table read through kcore's direct-map (RAM) segments; the struct pages must be
 * in RAM too: the guest's namespace is made with --map=mem (build.NDCTL_CMD).
 */
#include <elf.h>
#include <glob.h>
#include <linux/fiemap.h>

#define DP_MAXSEG 64
#define DP_MAXPG 64 /* model pages per file (max_file_pages) */
#define DP_MAXF 8
#define DP_MAXEXT 128

static struct { uint64_t va, off, sz; } dp_seg[DP_MAXSEG];
static int dp_nseg, dp_ok, dp_levels = 4, dp_nfiles, dp_npg, dp_reads;
static int dp_kc = -1;
static uint64_t dp_pob, dp_vmemmap, dp_pgt, dp_pmem;
static long dp_pgsize = 64, dp_infooff, dp_mapoff, dp_hostoff, dp_inooff;
static long dp_off[DP_MAXPG];
static long dp_last[DP_MAXF][DP_MAXPG]; /* last block seen, -1 never */
static long dp_old[DP_MAXF][DP_MAXPG];  /* the block before a change from dp_last */
static long dp_cur[DP_MAXF][DP_MAXPG];  /* pfn now, -1 hole */
static char dp_sh[DP_MAXF][DP_MAXPG];   /* FIEMAP_EXTENT_SHARED now */
static uint64_t dp_tlb_va[16], dp_tlb_pa[16];
static int dp_tlb_n;

static int dp_pread(uint64_t va, void *buf, size_t n) {
  for (int i = 0; i < dp_nseg; i++)
    if (va >= dp_seg[i].va && va + n <= dp_seg[i].va + dp_seg[i].sz) {
      dp_reads++;
      return pread(dp_kc, buf, n, (off_t)(dp_seg[i].off + (va - dp_seg[i].va))) == (ssize_t)n
                 ? 0 : -1;
    }
  return -1;
}

/* the physical address of kernel virtual address va (page tables read via kcore) */
static int dp_vtop(uint64_t va, uint64_t *pa) {
  for (int i = 0; i < dp_tlb_n; i++)
    if (dp_tlb_va[i] == (va & ~0xfffULL)) { *pa = dp_tlb_pa[i] | (va & 0xfff); return 0; }
  uint64_t table = dp_pgt, e = 0; /* table: a virtual address */
  for (int lvl = dp_levels; lvl >= 1; lvl--) {
    int shift = 12 + 9 * (lvl - 1);
    if (dp_pread(table + ((va >> shift) & 511) * 8, &e, 8)) return -1;
    if (!(e & 1)) return -1;
    uint64_t phys = e & 0x000ffffffffff000ULL;
    if (lvl == 1 || ((lvl == 2 || lvl == 3) && (e & 0x80))) {
      uint64_t mask = (1ULL << shift) - 1;
      *pa = (phys & ~mask) | (va & mask);
      int k = dp_tlb_n < 16 ? dp_tlb_n++ : (int)((va >> 12) & 15);
      dp_tlb_va[k] = va & ~0xfffULL;
      dp_tlb_pa[k] = *pa & ~0xfffULL;
      return 0;
    }
    table = dp_pob + phys;
  }
  return -1;
}

/* n bytes (not across a 4 KiB boundary) at kernel virtual address va */
static int dp_read(uint64_t va, void *buf, size_t n) {
  if (!dp_pread(va, buf, n)) return 0;
  uint64_t pa;
  if (dp_vtop(va, &pa)) return -1;
  return dp_pread(dp_pob + pa, buf, n);
}

static int dp_u64(uint64_t va, uint64_t *v) { return dp_read(va, v, 8); }

static int dp_syms(void) {
  const char *cache = "/tmp/daxpages.syms";
  FILE *f = fopen(cache, "r");
  int from_cache = f != NULL;
  if (!f) f = fopen("/proc/kallsyms", "r");
  if (!f) return -1;
  char line[512];
  uint64_t a_pob = 0, a_vmm = 0;
  while (fgets(line, sizeof line, f)) {
    unsigned long long a;
    char t, name[256];
    if (sscanf(line, "%llx %c %255s", &a, &t, name) != 3) continue;
    if (!strcmp(name, "page_offset_base")) a_pob = a;
    else if (!strcmp(name, "vmemmap_base")) a_vmm = a;
    else if (!strcmp(name, "init_top_pgt")) dp_pgt = a;
    if (a_pob && a_vmm && dp_pgt && !from_cache) break;
  }
  fclose(f);
  if (!a_pob || !a_vmm || !dp_pgt) return -2;
  if (!from_cache && (f = fopen(cache, "w"))) {
    fprintf(f, "%llx D page_offset_base\n%llx D vmemmap_base\n%llx D init_top_pgt\n",
            (unsigned long long)a_pob, (unsigned long long)a_vmm,
            (unsigned long long)dp_pgt);
    fclose(f);
  }
  if (dp_pread(a_pob, &dp_pob, 8) || dp_pread(a_vmm, &dp_vmemmap, 8)) return -3;
  /* a 4-level direct map starts at 0xffff888000000000 (+KASLR), a 5-level one below */
  dp_levels = dp_pob < 0xffff800000000000ULL ? 5 : 4;
  return 0;
}

static int dp_segments(void) {
  Elf64_Ehdr eh;
  if (pread(dp_kc, &eh, sizeof eh, 0) != sizeof eh || memcmp(eh.e_ident, ELFMAG, SELFMAG))
    return -1;
  for (int i = 0; i < eh.e_phnum && dp_nseg < DP_MAXSEG; i++) {
    Elf64_Phdr ph;
    if (pread(dp_kc, &ph, sizeof ph, (off_t)(eh.e_phoff + i * sizeof ph)) != sizeof ph)
      return -1;
    if (ph.p_type != PT_LOAD) continue;
    dp_seg[dp_nseg].va = ph.p_vaddr;
    dp_seg[dp_nseg].off = ph.p_offset;
    dp_seg[dp_nseg++].sz = ph.p_filesz;
  }
  return dp_nseg ? 0 : -1;
}

/* the physical address of the pmem data (the pfn device's "resource": namespace start +
 * start_pad + dataoff, drivers/nvdimm/pfn_devs.c resource_show) */
static char dp_why[160];
static int dp_read_hex(const char *path, uint64_t *v) {
  FILE *f = fopen(path, "r");
  unsigned long long x;
  int r = f && fscanf(f, "%llx", &x) == 1 ? 0 : -1;
  if (!r) *v = x;
  else snprintf(dp_why, sizeof dp_why, "%s:%s", path, strerror(errno));
  if (f) fclose(f);
  return r;
}

static int dp_pmem_start(void) {
  if (!dp_read_hex("/sys/block/pmem0/device/resource", &dp_pmem)) return 0;
  glob_t gl;
  int r = -1;
  if (glob("/sys/bus/nd/devices/pfn*", 0, NULL, &gl)) return -1;
  for (size_t i = 0; i < gl.gl_pathc && r; i++) {
    char path[256];
    snprintf(path, sizeof path, "%s/resource", gl.gl_pathv[i]);
    r = dp_read_hex(path, &dp_pmem); /* a disabled instance: ENXIO */
  }
  globfree(&gl);
  return r;
}

static void dp_cfg(const char *p) {
  double t0 = now_ms();
  char *e;
  long v[8 + DP_MAXPG];
  int n = 0;
  for (; n < 8 + DP_MAXPG; n++) {
    v[n] = strtol(p, &e, 0);
    if (e == p) break;
    p = e;
  }
  const char *why = NULL;
  if (n < 7 || v[5] < 1 || v[5] > DP_MAXF || v[6] < 1 || v[6] > DP_MAXPG || n < 7 + v[6])
    why = "bad_pagescfg_line";
  else {
    dp_pgsize = v[0]; dp_infooff = v[1]; dp_mapoff = v[2]; dp_hostoff = v[3];
    dp_inooff = v[4]; dp_nfiles = (int)v[5]; dp_npg = (int)v[6];
    for (int i = 0; i < dp_npg; i++) dp_off[i] = v[7 + i];
    for (int f = 0; f < DP_MAXF; f++)
      for (int i = 0; i < DP_MAXPG; i++) dp_last[f][i] = dp_old[f][i] = dp_cur[f][i] = -1;
    if (dp_kc < 0) dp_kc = open("/proc/kcore", O_RDONLY);
    if (dp_kc < 0) why = errno == EPERM ? "kcore_EPERM_(lockdown?)" : "no_/proc/kcore";
    else if (!dp_nseg && dp_segments()) why = "kcore_ELF_headers";
    else if (dp_syms()) why = "kallsyms_(page_offset_base,vmemmap_base,init_top_pgt)";
    else if (dp_pmem_start()) why = "no_pfn_device_resource";
  }
  if (why) {
    printf("@@G cfg ok=0 error=%s%s%s\n", why, dp_why[0] ? "_" : "", dp_why);
    fflush(stdout);
    return;
  }
  dp_ok = 1;
  printf("@@G cfg ok=1 levels=%d vmemmap=0x%llx pmem=0x%llx files=", dp_levels,
         (unsigned long long)dp_vmemmap, (unsigned long long)dp_pmem);
  for (int i = 0; i < dp_nfiles; i++) {
    struct stat st;
    printf("%s%d:%llu", i ? "," : "", i,
           stat(path_of(i), &st) ? 0ULL : (unsigned long long)st.st_ino);
  }
  printf(" ms=%.1f\n", now_ms() - t0);
  fflush(stdout);
}

/* FIEMAP of every file: dp_cur, dp_sh and the history (a file that cannot be opened --
 * unmounted -- keeps its history and has nothing now) */
static void dp_fiemap(void) {
  static char buf[sizeof(struct fiemap) + DP_MAXEXT * sizeof(struct fiemap_extent)];
  struct fiemap *fm = (struct fiemap *)buf;
  for (int f = 0; f < dp_nfiles; f++) {
    int fd = open(path_of(f), O_RDONLY);
    if (fd < 0) continue; /* unmounted: its blocks are as they were */
    for (int i = 0; i < dp_npg; i++) { dp_cur[f][i] = -1; dp_sh[f][i] = 0; }
    memset(buf, 0, sizeof buf);
    fm->fm_start = 0;
    fm->fm_length = ~0ULL;
    fm->fm_extent_count = DP_MAXEXT;
    int r = ioctl(fd, FS_IOC_FIEMAP, fm);
    close(fd);
    if (r) continue;
    for (unsigned x = 0; x < fm->fm_mapped_extents; x++) {
      struct fiemap_extent *fe = &fm->fm_extents[x];
      if (fe->fe_flags & (FIEMAP_EXTENT_UNKNOWN | FIEMAP_EXTENT_DELALLOC)) continue;
      for (int i = 0; i < dp_npg; i++) {
        uint64_t o = (uint64_t)dp_off[i];
        if (o < fe->fe_logical || o >= fe->fe_logical + fe->fe_length) continue;
        dp_cur[f][i] = (long)((dp_pmem + fe->fe_physical + (o - fe->fe_logical)) >> 12);
        dp_sh[f][i] = !!(fe->fe_flags & FIEMAP_EXTENT_SHARED);
      }
    }
  }
  for (int f = 0; f < dp_nfiles; f++)
    for (int i = 0; i < dp_npg; i++)
      if (dp_cur[f][i] != dp_last[f][i] && dp_last[f][i] >= 0) {
        dp_old[f][i] = dp_last[f][i];
        dp_last[f][i] = dp_cur[f][i] >= 0 ? dp_cur[f][i] : dp_last[f][i];
        if (dp_cur[f][i] < 0) dp_last[f][i] = -1; /* a hole now: the old block is gone */
      } else if (dp_cur[f][i] >= 0) dp_last[f][i] = dp_cur[f][i];
}

static int dp_in_use(long pfn) {
  for (int f = 0; f < dp_nfiles; f++)
    for (int i = 0; i < dp_npg; i++)
      if (dp_cur[f][i] == pfn) return 1;
  return 0;
}

#define DP_MAXDUMP 256
static long dp_dumped[DP_MAXDUMP];
static int dp_ndumped;
static uint64_t dp_as[DP_MAXDUMP];
static int dp_nas;

static void dp_dump(long pfn, int follow) {
  for (int i = 0; i < dp_ndumped; i++)
    if (dp_dumped[i] == pfn) return;
  if (pfn < 0 || dp_ndumped >= DP_MAXDUMP) return;
  dp_dumped[dp_ndumped++] = pfn;
  unsigned char pg[256];
  uint64_t va = dp_vmemmap + (uint64_t)pfn * (uint64_t)dp_pgsize;
  if (dp_pgsize > (long)sizeof pg || dp_read(va, pg, (size_t)dp_pgsize)) {
    printf("@@G step=%d pfn=%ld error=unreadable_struct_page_0x%llx\n", cur_step, pfn,
           (unsigned long long)va);
    return;
  }
  printf("@@G step=%d pfn=%ld raw=", cur_step, pfn);
  for (long i = 0; i < dp_pgsize; i++) printf("%02x", pg[i]);
  printf("\n");
  uint64_t info, mapping;
  memcpy(&info, pg + dp_infooff, 8);
  memcpy(&mapping, pg + dp_mapoff, 8);
  if (!(info & 1) && mapping >= 0xff00000000000000ULL && !(mapping & 3)) { /* not a tail */
    int seen = 0;
    for (int i = 0; i < dp_nas; i++) seen |= dp_as[i] == mapping;
    uint64_t host, ino;
    if (!seen && dp_nas < DP_MAXDUMP) {
      dp_as[dp_nas++] = mapping;
      if (!dp_u64(mapping + (uint64_t)dp_hostoff, &host) &&
          !dp_u64(host + (uint64_t)dp_inooff, &ino))
        printf("@@G step=%d as=0x%llx ino=%llu\n", cur_step, (unsigned long long)mapping,
               (unsigned long long)ino);
      else printf("@@G step=%d as=0x%llx ino=?\n", cur_step, (unsigned long long)mapping);
    }
  }
  if (!follow) return;
  long head = pfn;
  if (info & 1) { /* a tail: a pointer to the head | 1, or a mask | 1 (HVO layouts) */
    uint64_t m = info & ~1ULL;
    uint64_t hva = !((~m + 1) & ~m) ? (va & info) : m;
    head = (long)((hva - dp_vmemmap) / (uint64_t)dp_pgsize);
  }
  dp_dump(head, 0);
  dp_dump(head + 1, 0);
}

static void dp_pages(const char *p) {
  if (!dp_ok) return;
  /* A killed call that never returned (6.1's reflink spins in
   * xfs_mmaplock_two_inodes_and_break_dax_layout() with both inodes' i_rwsem held and
   * no signal check) would block FIEMAP (xfs_ilock IOLOCK_SHARED) and so the helper:
   * no dump while one is pending.  A pending umount holds no inode lock. */
  if (pending_pid && pending_kind != L_UMOUNT) {
    printf("@@G step=%d error=a_call_from_step_%d_is_still_running\n", cur_step, pending_step);
    fflush(stdout);
    return;
  }
  double t0 = now_ms();
  dp_reads = 0;
  dp_ndumped = dp_nas = 0;
  dp_fiemap();
  char *e;
  long nk = strtol(p, &e, 0);
  p = e;
  long want[DP_MAXDUMP];
  int nw = 0;
  for (long k = 0; k < nk && k < DP_MAXDUMP; k++) {
    long f = strtol(p, &e, 0);
    if (e == p) break;
    p = e;
    long i = strtol(p, &e, 0);
    if (e == p) break;
    p = e;
    long mode = strtol(p, &e, 0);
    if (e == p) break;
    p = e;
    if (f < 0 || f >= dp_nfiles || i < 0 || i >= dp_npg) continue;
    long pfn = mode ? dp_old[f][i] : dp_cur[f][i];
    const char *st = mode ? (pfn < 0 ? "none" : dp_in_use(pfn) ? "busy" : "gone")
                          : (pfn < 0 ? "hole" : "cur");
    printf("@@G step=%d key=%ld:%ld pfn=%ld st=%s sh=%d\n", cur_step, f, i, pfn, st,
           dp_sh[f][i]);
    if (pfn >= 0) want[nw++] = pfn;
  }
  for (int i = 0; i < nw; i++) dp_dump(want[i], 1);
  printf("@@G step=%d done reads=%d us=%.0f\n", cur_step, dp_reads, (now_ms() - t0) * 1e3);
  fflush(stdout);
}

/* 1 when the line was a daxpages command */
static int daxpages_line(const char *line) {
  const char *p = line + strspn(line, " \t");
  if (!strncmp(p, "pagescfg ", 9)) { dp_cfg(p + 9); return 1; }
  if (!strncmp(p, "pages ", 6)) { dp_pages(p + 6); return 1; }
  return 0;
}

/* daxlib: the daxfuzz guest commands on a real fs-DAX filesystem (plain syscalls).
 *
 * One source, two programs: the guest helper daxop (daxop.c: this file + a main that reads
 * a program file; `daxfuzz kernel setup` builds it with gcc -static) and the stand-alone
 * reproducers of `daxfuzz kernel repro` (this file verbatim + a main holding the program
 * as a table of lines).  Both feed the lines, in order, to daxop_line().
 * API: daxop_start(MOUNTPOINT, DEVICE, TIMEOUT_MS); daxop_line(LINE)...; daxop_end().
 *
 * A program is text, one command a line (daxfuzz/guest/translate.py writes it):
 *   init NFILES SIZE [COWEXTSIZE [RMAPBT]]
 *                                   create f0..f{N-1} of SIZE bytes (holes); with
 *                                   COWEXTSIZE > 0, first give each (still empty) file
 *                                   that XFS CoW extent size hint in bytes
 *                                   (FS_IOC_FSSETXATTR, FS_XFLAG_COWEXTSIZE); with RMAPBT
 *                                   0 or 1, the filesystem must have (1) or lack (0) the
 *                                   reverse-mapping btree (XFS_IOC_FSGEOMETRY_V1)
 *   step N [TITLE]                  the following command is trace step N (with echo_steps,
 *                                   "== step N: TITLE" is printed first)
 *   mmap SLOT INO OFF LEN PROT SHARED HUGE MISALIGN SYNC
 *                                   mmap(2) MAP_FIXED of INO (opened read-write when it
 *                                   may be) at the slot's window + OFF + MISALIGN; EEXIST
 *                                   while the slot maps anything
 *   munmap SLOT [OFF LEN]           munmap(2) of file offsets [OFF, OFF+LEN) at the slot's
 *                                   placement; without LEN (or 0) of its whole extent
 *   msync SLOT                      msync(MS_SYNC) of the slot's extent
 *   mprotect SLOT OFF LEN PROT      mprotect(2) of file offsets [OFF, OFF+LEN)
 *   mremap SLOT OFF LEN TO MISALIGN munmap(2) of everything slot TO maps, then mremap(2)
 *                                   MAYMOVE|FIXED of file offsets [OFF, OFF+LEN) of SLOT
 *                                   to TO's window + OFF + MISALIGN (TO's placement now)
 *   madv SLOT OFF LEN               madvise(MADV_DONTNEED) over file offsets [OFF, OFF+LEN)
 *                                   of the slot, clipped to its extent (empty: ok, no call)
 *   touch SLOT OFF WRITE            load/store one byte at file offset OFF of the slot
 *   gup H SLOT OFF WRITE KIND       vmsplice() the page into pipe H (a FOLL_GET reference);
 *                                   KIND 1 pin, 2 get (for the release bookkeeping)
 *   gupv H SLOT WRITE NSEG OFF NPAGES ...
 *                                   one vmsplice() of the NSEG ranges (NPAGES pages at file
 *                                   offset OFF each) into the staging pipe -- a
 *                                   get_user_pages_fast() of each range's pages at once --
 *                                   then each page spliced on to its own pipe H, H+1, ...
 *                                   (KIND 1); all or nothing; WRITE stores to each first
 *   gupl SLOT OFF                   io_uring fixed buffer (FOLL_PIN|FOLL_LONGTERM)
 *   hwpoison SLOT OFF MM            madvise(MADV_HWPOISON) of the page at file offset OFF
 *                                   of the slot: the kernel GUPs it, drops that reference
 *                                   and runs memory_failure() on its pfn with this process
 *                                   current.  A SIGBUS it sends (BUS_MCEERR_AR, delivered
 *                                   as the call returns) is reported "ok" with note
 *                                   killed=MM, MM being the model mm the process plays.
 *                                   ENXIO, nothing poisoned, when the page there is not
 *                                   a present pmem page (/proc/self/pagemap, /proc/iomem)
 *   release H KIND [N]              drain pipes H..H+N-1 (N 1 by default; each must hold
 *                                   a KIND reference, else EINVAL and none is drained)
 *   fork MM CHILD VMAS              fork(2) of the process playing model mm MM (its slots
 *                                   MM*VMAS .. +VMAS-1); the child plays mm CHILD, its
 *                                   slots at the parent's addresses.  EBUSY when CHILD's
 *                                   slots map anything (the model's condition).
 *   truncate INO SIZE | punch INO OFF LEN
 *   pwrite INO OFF LEN              pwrite(2) LEN bytes of a non-zero pattern from a heap
 *                                   buffer (no DAX mapping) at OFF, over short writes
 *   pwrite_from SLOT INO LAST NSEG [DOFF NIOV SOFF LEN ...] ...
 *                                   pwrite(2) to INO from the slot's own mapping: per
 *                                   segment one pwritev(2) at DOFF of NIOV pieces, each
 *                                   LEN bytes from the mapping's file offset SOFF, or from
 *                                   a heap buffer when SOFF is -1; segments in order, over
 *                                   short writes (the copy faults the mapped pieces in).
 *                                   First, EFAULT with nothing written when the slot maps
 *                                   nothing, a mapped piece is outside the mapping, or
 *                                   LAST (the source's last page) is at or past its file's
 *                                   EOF.  Runs in the process playing the slot, not in a
 *                                   child.
 *   reflink SRC DST NSEG SOFF DOFF LEN ...   FICLONERANGE per segment
 *   exchange INO1 INO2 NSEG OFF1 OFF2 LEN ...
 *                                   XFS_IOC_EXCHANGE_RANGE per segment, in the given order
 *                                   (issued on INO2's fd, file1_fd INO1's; flags 0)
 *   swapext INO TMP                 XFS_IOC_SWAPEXT (xfs_fsr's call): swap all of INO's
 *                                   blocks with TMP's; sx_length = INO's size, sx_stat's
 *                                   ctime/mtime from statx(INO), as xfs_fsr's bulkstat
 *   umount | mount
 *   errno NAME                      a result the model's bookkeeping decides (EEXIST ...)
 *   skip REASON...                  not expressible from userspace
 * Layout-changing calls (exchange and swapext too), and pwrite (it takes the file's IOLOCK, which a blocked truncate
 * may hold), run in a child (fork) so that a wait is observed and timed;
 * an interruptible wait is interrupted with SIGKILL after TIMEOUT_MS (as the model's
 * "blocked" op is), an uninterruptible one (umount) stays pending and is reported when
 * it finishes, as does a killed call that does not exit (a reflink spinning on a pinned
 * page of its second inode: xfs_mmaplock_two_inodes_and_break_dax_layout() never looks
 * at signals).  A later umount is the pending umount's result only if that is what is
 * pending.  One result line per step on stdout:
 *   @@R step=N status=ok|blocked|err|sigbus|sigsegv|skip|pending ms=T errno=NAME note=...
 * and the kernel's own WARNING/BUG/Oops/KASAN lines from /dev/kmsg after each step:
 *   @@K step=N <line>
 *
 * Slots.  Slot S has a 1 GiB window; file offset O is at window + O + MISALIGN (0 or
 * 4 KiB, set by the slot's last mmap or mremap).  The slot maps a list of pieces (file
 * offset ranges), read back from /proc/self/maps after each mmap, munmap and mremap: a
 * partial munmap or a mremap out of it leaves holes.  Its extent is [its first mapped
 * byte, its last).  A slot mapping nothing is EINVAL for munmap, msync, mprotect, madv,
 * and as mremap's source (bookkeeping); its window is then a PROT_NONE reservation.  A
 * slot mapping something has nothing else in its window: its holes are really unmapped,
 * so the kernel answers for them (ENOMEM, EFAULT, SIGSEGV).
 *
 * Processes.  The first process (the director) reads the program, plays every model mm
 * nobody forked into, and runs every command without a slot.  `fork` makes a worker
 * process for the child mm; from then on the director sends each command naming one of
 * that mm's slots to its worker (command pipe per mm, made at the first fork so every
 * process has them) and waits for its answer (one shared answer pipe) before going on:
 * steps run strictly in order, each worker printing its own @@R line.  The GUP pipes are
 * made at start, so every process shares pipe H; release drains it, from any process.
 * At the end the director closes the command pipes: each worker exits on EOF, and EOF
 * on the answer pipe says they all have (their mappings gone).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <linux/io_uring.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef MAP_SYNC
#define MAP_SYNC 0x80000
#endif
#ifndef MAP_SHARED_VALIDATE
#define MAP_SHARED_VALIDATE 0x03
#endif

#define PMD (2UL << 20)
#define MAXSLOTS 64
#define MAXH 64
#define MAXARGS 160 /* numbers on a command line (a gupv of MAXH one-page ranges) */
#define SLOTSPAN (1UL << 30) /* address space reserved per VMA slot */
#define MAXPIECES 64 /* mapped ranges per slot (a partial munmap/mremap leaves holes) */

/* XFS ioctls, as in xfs_fs.h (xfslibs-dev, not always installed); own names, no clash */
struct dx_exchange_range { /* XFS_IOC_EXCHANGE_RANGE, Linux 6.10+ */
  int32_t file1_fd;
  uint32_t pad;
  uint64_t file1_offset, file2_offset, length, flags;
};
struct dx_bstime { long tv_sec; int32_t tv_nsec; };
struct dx_bstat { /* struct xfs_bstat */
  uint64_t bs_ino;
  uint16_t bs_mode, bs_nlink;
  uint32_t bs_uid, bs_gid, bs_rdev;
  int32_t bs_blksize;
  int64_t bs_size;
  struct dx_bstime bs_atime, bs_mtime, bs_ctime;
  int64_t bs_blocks;
  uint32_t bs_xflags;
  int32_t bs_extsize, bs_extents;
  uint32_t bs_gen;
  uint16_t bs_projid_lo, bs_forkoff, bs_projid_hi, bs_sick, bs_checked;
  unsigned char bs_pad[2];
  uint32_t bs_cowextsize, bs_dmevmask;
  uint16_t bs_dmstate, bs_aextents;
};
struct dx_swapext { /* struct xfs_swapext */
  int64_t sx_version, sx_fdtarget, sx_fdtmp, sx_offset, sx_length;
  char sx_pad[16];
  struct dx_bstat sx_stat;
};
_Static_assert(sizeof(struct dx_exchange_range) == 40, "xfs_exchange_range");
_Static_assert(sizeof(struct dx_bstat) == 136, "xfs_bstat");
_Static_assert(sizeof(struct dx_swapext) == 192, "xfs_swapext");
#define DX_IOC_EXCHANGE_RANGE _IOW('X', 129, struct dx_exchange_range)
#define DX_IOC_SWAPEXT _IOWR('X', 109, struct dx_swapext)
#define DX_SX_VERSION 0

static const char *mnt, *dev;
static long timeout_ms;
static char *base;
/* win: where file offset 0 of the slot would be (a child keeps its parent's windows);
 * mis: 0 or 4096 (the placement of the slot's last mmap/mremap: file offset o is at
 * win + o + mis); p[0..np-1]: the file offset ranges [lo, hi) the slot maps, ascending,
 * disjoint, read back from /proc/self/maps after every call that may change them */
struct piece { long lo, hi; };
static struct {
  char *win;
  long mis;
  int ino, np;
  struct piece p[MAXPIECES];
} slots[MAXSLOTS];
static int hkind[MAXH]; /* the director's handle bookkeeping: 0 free, else the KIND */
static int pipes[MAXH][2];
static int stage[2]; /* gupv: the pages of one vmsplice, before each goes to its pipe */
/* processes (see the header): nv is 0 until the first fork */
struct msg { int step; char line[1020]; }; /* < PIPE_BUF: one atomic write */
struct answer { int ok, nmapped; };
static int nv;
static int cmdp[MAXSLOTS][2], ansp[2];
static char worker_of[MAXSLOTS]; /* director: mm is played by a worker */
static int wmapped[MAXSLOTS];    /* director: slots that worker maps (from its answers) */
static int me = -1;              /* a worker: the mm it plays */
static int kmsg = -1;
static int cur_step;
static int echo_steps; /* a reproducer: print each step's title before its result */
static sigjmp_buf jb;
static volatile int fault_sig;
static pid_t pending_pid;
static int pending_step;
static int pending_kind; /* the lop kind of pending_pid: only a pending umount is reused */
static double pending_t0;

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static const char *ename(int e) {
  switch (e) {
  case 0: return "0";
  case EBUSY: return "EBUSY";
  case EINVAL: return "EINVAL";
  case ENOENT: return "ENOENT";
  case EEXIST: return "EEXIST";
  case EFAULT: return "EFAULT";
  case EOPNOTSUPP: return "EOPNOTSUPP";
  case EPERM: return "EPERM";
  case EACCES: return "EACCES";
  case ENOSPC: return "ENOSPC";
  case ENOMEM: return "ENOMEM";
  case EINTR: return "EINTR";
  case EAGAIN: return "EAGAIN";
  case EXDEV: return "EXDEV";
  case ENOSYS: return "ENOSYS";
  case EIO: return "EIO";
  case ENXIO: return "ENXIO";
  case ETXTBSY: return "ETXTBSY";
  case EBADF: return "EBADF";
  case EROFS: return "EROFS";
  case ENODEV: return "ENODEV";
  case EFBIG: return "EFBIG";
  case ENOTTY: return "ENOTTY";
  case EISDIR: return "EISDIR";
  default: {
    static char b[16];
    snprintf(b, sizeof b, "E%d", e);
    return b;
  }
  }
}

static void result(const char *status, double ms, int err, const char *fmt, ...) {
  char note[256] = "";
  if (fmt) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(note, sizeof note, fmt, ap);
    va_end(ap);
    for (char *p = note; *p; p++)
      if (*p == ' ') *p = '_';
  }
  printf("@@R step=%d status=%s ms=%.1f errno=%s note=%s\n", cur_step, status, ms, ename(err),
         note[0] ? note : "-");
  fflush(stdout);
}

static void drain_kmsg(void) {
  char buf[2048];
  if (kmsg < 0) return;
  for (;;) {
    ssize_t n = read(kmsg, buf, sizeof buf - 1);
    if (n < 0) {
      if (errno == EPIPE) continue; /* overwritten records */
      break;
    }
    if (n == 0) break;
    buf[n] = 0;
    char *msg = strchr(buf, ';');
    msg = msg ? msg + 1 : buf;
    char *nl = strchr(msg, '\n');
    if (nl) *nl = 0;
    if (strstr(msg, "WARNING") || strstr(msg, "BUG") || strstr(msg, "Oops") ||
        strstr(msg, "KASAN") || strstr(msg, "kernel BUG") || strstr(msg, "general protection") ||
        strstr(msg, "Call Trace") || strstr(msg, "RIP:") || strstr(msg, "hung_task") ||
        strstr(msg, "blocked for more than") || strstr(msg, "page dumped") ||
        strstr(msg, "Memory failure") || strstr(msg, "refcount_t")) {
      printf("@@K step=%d %s\n", cur_step, msg);
      fflush(stdout);
    }
  }
}

static void on_fault(int sig) {
  fault_sig = sig;
  siglongjmp(jb, 1);
}

static char *path_of(int ino) {
  static char p[256];
  snprintf(p, sizeof p, "%s/f%d", mnt, ino);
  return p;
}

/* one user access; 0 ok, else the signal */
static int access_at(volatile char *p, int write) {
  fault_sig = 0;
  if (sigsetjmp(jb, 1) == 0) {
    if (write) *p = (char)0x5a; /* a store only: a load first would be a read fault */
    else (void)*p;              /* (SIGBUS past EOF before a store's SIGSEGV, say) */
  }
  return fault_sig;
}

static char *addr_of(int slot, long off) {
  return slots[slot].win + off + slots[slot].mis;
}

/* A slot's window.  While the slot maps nothing it is one PROT_NONE reservation, so
 * nothing else is placed there.  While it maps something the window holds its pieces
 * and nothing else: the holes between them and the space around them are really
 * unmapped, so the kernel answers for them itself (mprotect, msync and madvise ENOMEM,
 * mremap and GUP EFAULT, a load or store SIGSEGV), as the model's gaps between VMAs.
 * (The helper makes no mmap(NULL) after the start: nothing lands in a cleared window.) */
static void reserve_window(int slot) {
  mmap(slots[slot].win, SLOTSPAN, PROT_NONE,
       MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
}

static void clear_window(int slot) { munmap(slots[slot].win, SLOTSPAN); }

static char mapsbuf[1 << 20];

/* the slot's pieces read back from /proc/self/maps: the file VMAs in its window (those
 * an mprotect split apart joined again), as file offsets at its placement; the window
 * reserved again when none is left */
static void settle(int slot) {
  int fd = open("/proc/self/maps", O_RDONLY);
  if (fd < 0) return; /* no /proc: the pieces stay as they were */
  size_t n = 0;
  for (ssize_t r; n < sizeof mapsbuf - 1 &&
                  (r = read(fd, mapsbuf + n, sizeof mapsbuf - 1 - n)) != 0;) {
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) break;
    n += (size_t)r;
  }
  close(fd);
  mapsbuf[n] = 0;
  uintptr_t w0 = (uintptr_t)slots[slot].win, w1 = w0 + SLOTSPAN;
  int np = 0;
  for (char *l = mapsbuf; l && *l;) {
    char *nl = strchr(l, '\n');
    unsigned long va, ve, pg, inode;
    unsigned dmaj, dmin;
    char perms[8];
    if (sscanf(l, "%lx-%lx %7s %lx %x:%x %lu", &va, &ve, perms, &pg, &dmaj, &dmin,
               &inode) == 7 && inode && va >= w0 && ve <= w1) {
      long lo = (long)(va - w0) - slots[slot].mis, hi = (long)(ve - w0) - slots[slot].mis;
      if (np && slots[slot].p[np - 1].hi == lo) slots[slot].p[np - 1].hi = hi;
      else if (np < MAXPIECES) slots[slot].p[np++] = (struct piece){lo, hi};
    }
    l = nl ? nl + 1 : NULL;
  }
  slots[slot].np = np;
  if (!np) reserve_window(slot);
}

/* [lo, hi): the file offsets from the slot's first mapped byte to its last */
static long extent(int slot, long *hi) {
  *hi = slots[slot].p[slots[slot].np - 1].hi;
  return slots[slot].p[0].lo;
}

/* 1 when the slot maps every file offset in [lo, hi) */
static int covered(int slot, long lo, long hi) {
  for (int i = 0; i < slots[slot].np && lo < hi; i++)
    if (slots[slot].p[i].lo <= lo && lo < slots[slot].p[i].hi) lo = slots[slot].p[i].hi;
  return lo >= hi;
}

static void do_mmap(int slot, int ino, long off, long len, int prot, int shared, int huge,
                    long misalign, int sync) {
  double t0 = now_ms();
  if (slot >= MAXSLOTS) { result("err", 0, EINVAL, "slot"); return; }
  if (slots[slot].np) { result("err", 0, EEXIST, "slot_in_use"); return; }
  /* read-write whenever the file allows: a later mprotect may add PROT_WRITE */
  int fd = open(path_of(ino), O_RDWR);
  if (fd < 0 && errno == EACCES) fd = open(path_of(ino), O_RDONLY);
  if (fd < 0) { result("err", now_ms() - t0, errno, "open"); return; }
  char *want = slots[slot].win + off + misalign;
  int flags = MAP_FIXED | (shared ? (sync ? MAP_SHARED_VALIDATE | MAP_SYNC : MAP_SHARED)
                                  : MAP_PRIVATE);
  clear_window(slot);
  char *a = mmap(want, len, prot, flags, fd, off);
  int e = errno;
  close(fd);
  if (a == MAP_FAILED) {
    reserve_window(slot);
    result("err", now_ms() - t0, e, "mmap");
    return;
  }
  madvise(a, len, MADV_DONTFORK);
  if (!huge) madvise(a, len, MADV_NOHUGEPAGE);
  slots[slot].mis = misalign;
  slots[slot].ino = ino;
  settle(slot);
  result("ok", now_ms() - t0, 0, "addr=%p", (void *)a);
}

/* munmap(2) of file offsets [off, off+len) at the slot's placement, or (whole) of
 * everything it maps: one call over its extent */
static void do_munmap(int slot, int whole, long off, long len) {
  double t0 = now_ms();
  if (slot < 0 || slot >= MAXSLOTS || !slots[slot].np) {
    result("err", 0, EINVAL, "no_vma");
    return;
  }
  long hi = off + len;
  if (whole) off = extent(slot, &hi);
  int r = munmap(addr_of(slot, off), hi - off);
  int e = errno;
  settle(slot);
  if (r) result("err", now_ms() - t0, e, "munmap");
  else result("ok", now_ms() - t0, 0, "%d_pieces_left", slots[slot].np);
}

/* msync(MS_SYNC) over the slot's extent: the kernel says ENOMEM for a hole inside it
 * (and syncs the rest) */
static void do_msync(int slot) {
  double t0 = now_ms();
  if (slot < 0 || slot >= MAXSLOTS || !slots[slot].np) {
    result("err", 0, EINVAL, "no_vma");
    return;
  }
  long hi, lo = extent(slot, &hi);
  int r = msync(addr_of(slot, lo), hi - lo, MS_SYNC);
  result(r ? "err" : "ok", now_ms() - t0, r ? errno : 0, NULL);
}

/* mprotect(2) of file offsets [off, off+len) at the slot's placement */
static void do_mprotect(int slot, long off, long len, int prot) {
  double t0 = now_ms();
  if (slot < 0 || slot >= MAXSLOTS || !slots[slot].np) {
    result("err", 0, EINVAL, "no_vma");
    return;
  }
  int r = mprotect(addr_of(slot, off), len, prot);
  result(r ? "err" : "ok", now_ms() - t0, r ? errno : 0, "%s",
         prot & PROT_WRITE ? "PROT_READ|PROT_WRITE" : "PROT_READ");
}

/* slot `to` unmapped whole, then mremap(2) MAYMOVE|FIXED of file offsets [off, off+len)
 * of the slot into it at to's window + off + mis (the placement an mmap of that range
 * there would get) */
static void do_mremap(int slot, long off, long len, int to, long mis) {
  double t0 = now_ms();
  if (slot < 0 || slot >= MAXSLOTS || !slots[slot].np) {
    result("err", 0, EINVAL, "no_vma");
    return;
  }
  if (to < 0 || to >= MAXSLOTS || to == slot) { result("err", 0, EINVAL, "slot"); return; }
  clear_window(to); /* one munmap(2) of everything `to` maps, and its reservation */
  slots[to].np = 0;
  char *old = addr_of(slot, off), *want = slots[to].win + off + mis;
  void *a = mremap(old, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, want);
  int e = errno;
  slots[to].mis = mis;
  slots[to].ino = slots[slot].ino;
  settle(slot);
  settle(to);
  if (a == MAP_FAILED) result("err", now_ms() - t0, e, "mremap");
  else result("ok", now_ms() - t0, 0, "to=%p_%d_pieces_left", a, slots[slot].np);
}

/* MADV_DONTNEED over file offsets [off, off+len) of the slot, clipped to its extent (the
 * kernel says ENOMEM for a hole inside, and zaps the rest) */
static void do_madv(int slot, long off, long len) {
  double t0 = now_ms();
  if (slot < 0 || slot >= MAXSLOTS || !slots[slot].np) {
    result("err", 0, EINVAL, "no_vma");
    return;
  }
  long end, first = extent(slot, &end);
  long lo = off > first ? off : first, hi = off + len < end ? off + len : end;
  if (lo >= hi) { result("ok", 0, 0, "empty_range"); return; }
  int r = madvise(addr_of(slot, lo), hi - lo, MADV_DONTNEED);
  if (r) result("err", now_ms() - t0, errno, "madvise");
  else result("ok", now_ms() - t0, 0, "off=%ld_len=%ld", lo, hi - lo);
}

#ifndef MADV_HWPOISON
#define MADV_HWPOISON 100
#endif
/* the pfn /proc/self/pagemap gives for a present page at p (root sees pfns), else 0 */
static uint64_t pagemap_pfn(const void *p) {
  uint64_t ent = 0;
  int fd = open("/proc/self/pagemap", O_RDONLY);
  if (fd < 0) return 0;
  ssize_t n = pread(fd, &ent, sizeof ent, (off_t)((uintptr_t)p / 4096) * 8);
  close(fd);
  return n == sizeof ent && (ent >> 63) ? ent & ((1ULL << 55) - 1) : 0;
}

/* whether pfn lies in a "Persistent Memory" range of /proc/iomem */
static int pmem_pfn(uint64_t pfn) {
  char line[256];
  int in = 0;
  FILE *f = fopen("/proc/iomem", "r");
  if (!f) return 0;
  while (!in && fgets(line, sizeof line, f)) {
    unsigned long long lo, hi;
    if (strstr(line, "Persistent Memory") && sscanf(line, " %llx-%llx", &lo, &hi) == 2)
      in = pfn >= lo / 4096 && pfn <= hi / 4096;
  }
  fclose(f);
  return in;
}

static void do_hwpoison(int slot, long off, int mm) {
  double t0 = now_ms();
  volatile int r = 0, e = 0;
  /* Poison only a pmem page this process maps: GUP would fault in, and poison, whatever
   * is there -- a page of RAM (the huge zero page of a hole, an anonymous copy) stays
   * poisoned for the boot.  The model said a device page is mapped here; if the kernel
   * disagrees, say so (ENXIO) and poison nothing. */
  uint64_t pfn = pagemap_pfn(addr_of(slot, off));
  if (!pfn || !pmem_pfn(pfn)) {
    result("err", now_ms() - t0, ENXIO, pfn ? "not_a_pmem_page_(pfn_0x%llx)" :
           "no_page_mapped_there", (unsigned long long)pfn);
    return;
  }
  fault_sig = 0;
  if (sigsetjmp(jb, 1) == 0) {
    r = madvise(addr_of(slot, off), 4096, MADV_HWPOISON);
    e = errno;
  }
  if (fault_sig == SIGBUS) result("ok", now_ms() - t0, 0, "killed=%d", mm);
  else if (fault_sig) result("sigsegv", now_ms() - t0, 0, NULL);
  else if (r) result("err", now_ms() - t0, e, "madvise_hwpoison");
  else result("ok", now_ms() - t0, 0, NULL);
}

static void do_touch(int slot, long off, int write) {
  double t0 = now_ms();
  char *p = addr_of(slot, off);
  int sig = access_at(p, write);
  if (sig == SIGBUS) result("sigbus", now_ms() - t0, 0, NULL);
  else if (sig) result("sigsegv", now_ms() - t0, 0, NULL);
  else result("ok", now_ms() - t0, 0, NULL);
}

/* pwrite(2) to ino from the slot's mapping (see the header); checks first, then each
 * segment (soff doff len) in order, over short writes */
/* write all of iov[0..n) at off, over short writes and EINTR; 0 or the errno */
static int pwritev_all(int fd, struct iovec *iov, int n, long off, long *total) {
  while (n > 0) {
    ssize_t w = pwritev(fd, iov, n, off);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return w < 0 ? errno : EIO;
    off += w;
    *total += w;
    while (n > 0 && (size_t)w >= iov->iov_len) { w -= (ssize_t)iov->iov_len; iov++; n--; }
    if (n > 0) { iov->iov_base = (char *)iov->iov_base + w; iov->iov_len -= (size_t)w; }
  }
  return 0;
}

#define MAXIOV 32
static void do_pwrite_from(int slot, int ino, long last, int nseg, const long *seg, int nargs) {
  double t0 = now_ms();
  if (nseg < 1 || nseg > 16) { result("err", 0, EINVAL, "segments"); return; }
  /* the segments' extent in the argument list: DOFF NIOV (SOFF LEN)*NIOV each */
  int at = 0;
  for (int i = 0; i < nseg; i++) {
    if (at + 2 > nargs || seg[at + 1] < 1 || seg[at + 1] > MAXIOV ||
        at + 2 + 2 * seg[at + 1] > nargs) { result("err", 0, EINVAL, "segments"); return; }
    at += 2 + 2 * (int)seg[at + 1];
  }
  int fd = open(path_of(ino), O_RDWR);
  if (fd < 0) { result("err", now_ms() - t0, errno, "open"); return; }
  const char *why = NULL;
  long heap = 0; /* the longest heap piece */
  if (slot < 0 || slot >= MAXSLOTS || !slots[slot].np) why = "no_vma";
  else {
    at = 0;
    for (int i = 0; !why && i < nseg; i++) { /* every mapped source byte in a piece */
      for (int k = 0; !why && k < seg[at + 1]; k++) {
        long so = seg[at + 2 + 2 * k], len = seg[at + 3 + 2 * k];
        if (len < 1) why = "source_outside_the_vma";
        else if (so < 0) heap = len > heap ? len : heap;
        else if (!covered(slot, so, so + len)) why = "source_outside_the_vma";
      }
      at += 2 + 2 * (int)seg[at + 1];
    }
    struct stat st;
    if (!why && !covered(slot, last, last + 1)) why = "source_outside_the_vma";
    if (!why && stat(path_of(slots[slot].ino), &st)) why = "source_file_stat_failed";
    if (!why && last >= st.st_size) why = "source_past_eof";
  }
  if (why) {
    close(fd);
    result("err", now_ms() - t0, EFAULT, "%s_(checked_before_writing)", why);
    return;
  }
  char *buf = heap ? malloc(heap) : NULL;
  if (heap && !buf) { close(fd); result("err", now_ms() - t0, ENOMEM, "malloc"); return; }
  if (buf) memset(buf, 0x5a, heap);
  long total = 0;
  int e = 0;
  at = 0;
  for (int i = 0; !e && i < nseg; i++) {
    struct iovec iov[MAXIOV];
    int n = (int)seg[at + 1];
    for (int k = 0; k < n; k++) {
      long so = seg[at + 2 + 2 * k];
      iov[k].iov_base = so < 0 ? buf : addr_of(slot, so);
      iov[k].iov_len = (size_t)seg[at + 3 + 2 * k];
    }
    e = pwritev_all(fd, iov, n, seg[at], &total);
    at += 2 + 2 * n;
  }
  free(buf);
  close(fd);
  if (e) result("err", now_ms() - t0, e, "pwrite_after_%ld_bytes", total);
  else result("ok", now_ms() - t0, 0, "wrote_%ld_bytes_in_%d_calls", total, nseg);
}

static void drain_fd(int fd) {
  char buf[65536];
  while (read(fd, buf, sizeof buf) > 0) {}
}

static void drain(int h) { drain_fd(pipes[h][0]); }

/* 1 when the page is in pipe H; the director checked H is free */
static int do_gup(int h, int slot, long off, int write) {
  double t0 = now_ms();
  char *p = addr_of(slot, off);
  if (write) { /* GUP with FOLL_WRITE faults the page in writable first */
    int sig = access_at(p, 1);
    if (sig) { result("err", now_ms() - t0, EFAULT, "write_fault_sig%d", sig); return 0; }
  }
  struct iovec iov = {.iov_base = (void *)((uintptr_t)p & ~4095UL), .iov_len = 4096};
  ssize_t n = vmsplice(pipes[h][1], &iov, 1, 0);
  if (n != 4096) {
    int e = n < 0 ? errno : EIO;
    drain(h);
    result("err", now_ms() - t0, e, "vmsplice");
    return 0;
  }
  result("ok", now_ms() - t0, 0, "vmsplice");
  return 1;
}

/* one vmsplice() of the ranges into the staging pipe -- get_user_pages_fast() of each
 * range's pages in one call (up to 16 at a time: iov_iter_get_pages2), so the pages a
 * PMD maps are grabbed together -- then each page buffer moved whole (splice pipe to
 * pipe: no second GUP) to its own pipe h, h+1, ...; all or nothing.  1 when held */
static int do_gupv(int h, int slot, int write, int nseg, const long *seg) {
  double t0 = now_ms();
  struct iovec iov[MAXH];
  int npages = 0;
  if (nseg < 1 || nseg > MAXH) { result("err", 0, EINVAL, "segments"); return 0; }
  for (int i = 0; i < nseg; i++) {
    iov[i].iov_base = (void *)((uintptr_t)addr_of(slot, seg[2 * i]) & ~4095UL);
    iov[i].iov_len = 4096UL * seg[2 * i + 1];
    npages += (int)seg[2 * i + 1];
  }
  if (write) /* GUP with FOLL_WRITE faults each page in writable first */
    for (int i = 0; i < nseg; i++)
      for (size_t o = 0; o < iov[i].iov_len; o += 4096) {
        int sig = access_at((char *)iov[i].iov_base + o, 1);
        if (sig) { result("err", now_ms() - t0, EFAULT, "write_fault_sig%d", sig); return 0; }
      }
  struct iovec *v = iov;
  int left = nseg, e = 0;
  long done = 0;
  while (left > 0) { /* a short vmsplice stopped at a page it could not get: retry it */
    ssize_t n = vmsplice(stage[1], v, left, 0);
    if (n <= 0) { e = n < 0 ? errno : EIO; break; }
    done += n;
    while (left && (size_t)n >= v->iov_len) { n -= (ssize_t)v->iov_len; v++; left--; }
    if (left && n) { v->iov_base = (char *)v->iov_base + n; v->iov_len -= n; }
  }
  for (int k = 0; !e && k < npages; k++) { /* moves the buffer: its reference goes along */
    ssize_t n = splice(stage[0], NULL, pipes[h + k][1], NULL, 4096, SPLICE_F_NONBLOCK);
    if (n != 4096) e = n < 0 ? errno : EIO;
  }
  if (e) { /* release what was taken, as pin_user_pages_fast's caller must */
    drain_fd(stage[0]);
    for (int k = 0; k < npages; k++) drain(h + k);
    result("err", now_ms() - t0, e, "vmsplice_got_%ld_of_%d_pages", done / 4096, npages);
    return 0;
  }
  result("ok", now_ms() - t0, 0, "vmsplice_of_%d_pages_in_%d_ranges", npages, nseg);
  return 1;
}

static void do_release(int h, int kind, int n) {
  double t0 = now_ms();
  int held = h >= 0 && n >= 1 && h + n <= MAXH;
  for (int k = 0; held && k < n; k++) held = hkind[h + k] == kind;
  if (!held) {
    result("err", 0, EINVAL, "no_such_handle_(bookkeeping)");
    return;
  }
  for (int k = 0; k < n; k++) {
    drain(h + k);
    hkind[h + k] = 0;
  }
  if (n > 1) result("ok", now_ms() - t0, 0, "drained_%d_pipes", n);
  else result("ok", now_ms() - t0, 0, "drained");
}

static void do_gupl(int slot, long off) {
  double t0 = now_ms();
  struct io_uring_params par;
  memset(&par, 0, sizeof par);
  int fd = (int)syscall(__NR_io_uring_setup, 4, &par);
  if (fd < 0) { result("skip", 0, errno, "io_uring_unavailable"); return; }
  struct iovec iov = {.iov_base = (void *)(((uintptr_t)addr_of(slot, off)) & ~4095UL),
                      .iov_len = 4096};
  int r = (int)syscall(__NR_io_uring_register, fd, IORING_REGISTER_BUFFERS, &iov, 1);
  int e = errno;
  if (r == 0) syscall(__NR_io_uring_register, fd, IORING_UNREGISTER_BUFFERS, NULL, 0);
  close(fd);
  if (r) result("err", now_ms() - t0, e, "io_uring_register_buffers");
  else result("ok", now_ms() - t0, 0, "longterm_pin_taken_and_released");
}

/* processes (see the header) ------------------------------------------------------- */
static int count_mapped(int mm) {
  int n = 0;
  for (int v = 0; v < nv; v++) n += slots[mm * nv + v].np != 0;
  return n;
}

/* the slot VMAs are MADV_DONTFORK (a layout call's child maps none); not across a fork */
static void fork_advice(int mm, int advice) {
  for (int v = 0; v < nv; v++) {
    int s = mm * nv + v;
    for (int i = 0; i < slots[s].np; i++)
      madvise(addr_of(s, slots[s].p[i].lo), slots[s].p[i].hi - slots[s].p[i].lo, advice);
  }
}

static void close_channels(void) { /* in a layout call's child */
  if (!nv) return;
  for (int i = 0; i < MAXSLOTS; i++) { close(cmdp[i][0]); close(cmdp[i][1]); }
  close(ansp[0]); close(ansp[1]);
}

static void worker_loop(void);

/* in the process playing mm p: fork, the child plays c; 1 when forked */
static int do_fork(int p, int c) {
  double t0 = now_ms();
  fork_advice(p, MADV_DOFORK);
  pid_t pid = fork();
  if (pid == 0) {
    for (int s = 0; s < MAXSLOTS; s++) /* nothing but p's VMAs was copied */
      if (s / nv != p) slots[s].np = 0;
    for (int v = 0; v < nv; v++) { /* now they are c's, at the same addresses */
      slots[c * nv + v] = slots[p * nv + v];
      slots[p * nv + v].np = 0;
    }
    fork_advice(c, MADV_DONTFORK);
    me = c;
    for (int i = 0; i < MAXSLOTS; i++) close(cmdp[i][1]); /* only the director writes */
    close(ansp[0]);
    worker_loop();
  }
  int e = errno;
  fork_advice(p, MADV_DONTFORK);
  if (pid < 0) { result("err", now_ms() - t0, e, "fork"); return 0; }
  result("ok", now_ms() - t0, 0, "child_pid=%d", pid);
  return 1;
}

static int parse(const char *line, char *cmd, long *a) {
  int off, n = 0;
  if (sscanf(line, "%31s%n", cmd, &off) != 1) return -1;
  line += off;
  while (n < MAXARGS && sscanf(line, "%ld%n", &a[n], &off) == 1) { line += off; n++; }
  for (int i = n; i < MAXARGS; i++) a[i] = 0; /* absent numbers are 0 */
  return n;
}

/* the slot a command acts on (fork: the parent's first), or -1 */
static long slot_of(const char *cmd, const long *a) {
  if (!strcmp(cmd, "gup") || !strcmp(cmd, "gupv")) return a[1];
  if (!strcmp(cmd, "fork")) return a[0] * a[2];
  if (!strcmp(cmd, "mmap") || !strcmp(cmd, "munmap") || !strcmp(cmd, "msync") ||
      !strcmp(cmd, "madv") || !strcmp(cmd, "touch") || !strcmp(cmd, "gupl") ||
      !strcmp(cmd, "pwrite_from") || !strcmp(cmd, "mprotect") || !strcmp(cmd, "mremap") ||
      !strcmp(cmd, "hwpoison"))
    return a[0];
  return -1;
}

/* a slot command, in the process playing its slot; 0 when a gup or fork failed */
static int slot_cmd(const char *cmd, const long *a) {
  if (!strcmp(cmd, "mmap"))
    do_mmap((int)a[0], (int)a[1], a[2], a[3], (int)a[4], (int)a[5], (int)a[6], a[7], (int)a[8]);
  else if (!strcmp(cmd, "munmap")) do_munmap((int)a[0], a[2] <= 0, a[1], a[2]);
  else if (!strcmp(cmd, "mprotect")) do_mprotect((int)a[0], a[1], a[2], (int)a[3]);
  else if (!strcmp(cmd, "mremap")) do_mremap((int)a[0], a[1], a[2], (int)a[3], a[4]);
  else if (!strcmp(cmd, "msync")) do_msync((int)a[0]);
  else if (!strcmp(cmd, "madv")) do_madv((int)a[0], a[1], a[2]);
  else if (!strcmp(cmd, "touch")) do_touch((int)a[0], a[1], (int)a[2]);
  else if (!strcmp(cmd, "hwpoison")) do_hwpoison((int)a[0], a[1], (int)a[2]);
  else if (!strcmp(cmd, "gupl")) do_gupl((int)a[0], a[1]);
  else if (!strcmp(cmd, "pwrite_from"))
    do_pwrite_from((int)a[0], (int)a[1], a[2], (int)a[3], a + 4, MAXARGS - 4);
  else if (!strcmp(cmd, "gup")) return do_gup((int)a[0], (int)a[1], a[2], (int)a[3]);
  else if (!strcmp(cmd, "gupv")) return do_gupv((int)a[0], (int)a[1], (int)a[2], (int)a[3], a + 4);
  else if (!strcmp(cmd, "fork")) return do_fork((int)a[0], (int)a[1]);
  return 1;
}

static void worker_loop(void) {
  struct msg m;
  for (;;) {
    ssize_t r = read(cmdp[me][0], &m, sizeof m);
    if (r < 0 && errno == EINTR) continue;
    if (r != sizeof m) _exit(0); /* EOF: the program is over */
    char cmd[32] = "";
    long a[MAXARGS];
    cur_step = m.step;
    struct answer k = {1, 0};
    if (parse(m.line, cmd, a) >= 0 && strcmp(cmd, "exit")) k.ok = slot_cmd(cmd, a);
    k.nmapped = count_mapped(me);
    if (write(ansp[1], &k, sizeof k) != sizeof k || !strcmp(cmd, "exit")) _exit(0);
  }
}

/* director: have mm's worker run the line, wait for its answer; the answer's ok */
static int forward(int mm, const char *line) {
  struct msg m = {.step = cur_step};
  snprintf(m.line, sizeof m.line, "%s", line);
  struct answer k;
  struct pollfd pf = {.fd = ansp[0], .events = POLLIN};
  if (write(cmdp[mm][1], &m, sizeof m) != sizeof m || poll(&pf, 1, 10 * timeout_ms + 5000) != 1 ||
      read(ansp[0], &k, sizeof k) != sizeof k) {
    result("err", 0, EIO, "no_answer_from_the_process_of_mm_%d", mm);
    return 0;
  }
  wmapped[mm] = k.nmapped;
  return k.ok;
}

static int mapped_in(int mm) { return worker_of[mm] ? wmapped[mm] : count_mapped(mm); }

/* director: a slot command, run here or by the worker playing the slot's mm */
static int dispatch(const char *cmd, const long *a, const char *line) {
  long s = slot_of(cmd, a);
  if (nv && s >= 0 && s < MAXSLOTS && worker_of[s / nv]) return forward((int)(s / nv), line);
  return slot_cmd(cmd, a);
}

static void director_fork(int p, int c, int vmas, const char *line, const long *a) {
  if (c == p || vmas < 1 || (p + 1) * vmas > MAXSLOTS || (c + 1) * vmas > MAXSLOTS ||
      (nv && vmas != nv)) {
    result("err", 0, EINVAL, "bad_fork");
    return;
  }
  if (!nv) { /* before any worker exists: every process will have these */
    for (int i = 0; i < MAXSLOTS; i++)
      if (pipe(cmdp[i])) { result("err", 0, errno, "pipe"); return; }
    if (pipe(ansp)) { result("err", 0, errno, "pipe"); return; }
    nv = vmas;
  }
  if (mapped_in(c)) { result("err", 0, EBUSY, "child_maps_something_(bookkeeping)"); return; }
  if (worker_of[c]) { forward(c, "exit"); worker_of[c] = 0; } /* maps nothing: retire it */
  if (dispatch("fork", a, line)) { worker_of[c] = 1; wmapped[c] = mapped_in(p); }
}

/* director: end the workers; EOF on the answer pipe once every one has exited */
static void end_workers(void) {
  char buf[256];
  if (!nv) return;
  for (int i = 0; i < MAXSLOTS; i++) close(cmdp[i][1]);
  close(ansp[1]);
  while (read(ansp[0], buf, sizeof buf) > 0) {}
}

/* layout-changing calls, in a child ---------------------------------------------- */
enum { L_TRUNC, L_PUNCH, L_REFLINK, L_UMOUNT, L_PWRITE, L_EXCHANGE, L_SWAPEXT };
struct lop { int kind, ino, dst, nseg; long a[3 * 16]; };

/* pwrite len bytes of a pattern from the heap at off; 0 or the errno */
static int write_all(int fd, long off, long len) {
  char *buf = malloc(len > 0 ? len : 1);
  if (!buf) return ENOMEM;
  memset(buf, 0xa5, len > 0 ? len : 1);
  for (long done = 0; done < len;) {
    ssize_t n = pwrite(fd, buf + done, len - done, off + done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno;
    if (n == 0) return EIO;
    done += n;
  }
  return 0;
}

/* XFS_IOC_SWAPEXT as xfs_fsr issues it: whole files, A's times from a fresh stat */
static int swapext(int fd, int tfd) {
  struct statx sx;
  if (statx(fd, "", AT_EMPTY_PATH, STATX_BASIC_STATS, &sx)) return errno;
  struct dx_swapext s;
  memset(&s, 0, sizeof s);
  s.sx_version = DX_SX_VERSION;
  s.sx_fdtarget = fd;
  s.sx_fdtmp = tfd;
  s.sx_offset = 0;
  s.sx_length = (int64_t)sx.stx_size;
  s.sx_stat.bs_ino = sx.stx_ino;
  s.sx_stat.bs_mode = sx.stx_mode;
  s.sx_stat.bs_size = (int64_t)sx.stx_size;
  s.sx_stat.bs_mtime.tv_sec = sx.stx_mtime.tv_sec;
  s.sx_stat.bs_mtime.tv_nsec = (int32_t)sx.stx_mtime.tv_nsec;
  s.sx_stat.bs_ctime.tv_sec = sx.stx_ctime.tv_sec;
  s.sx_stat.bs_ctime.tv_nsec = (int32_t)sx.stx_ctime.tv_nsec;
  return ioctl(fd, DX_IOC_SWAPEXT, &s) ? errno : 0;
}

static int run_lop(struct lop *o) {
  if (o->kind == L_UMOUNT) return umount(mnt) ? errno : 0;
  if (o->kind == L_EXCHANGE || o->kind == L_SWAPEXT) { /* both files read-write */
    int fd1 = open(path_of(o->ino), O_RDWR);
    if (fd1 < 0) return errno;
    int fd2 = open(path_of(o->dst), O_RDWR);
    if (fd2 < 0) return errno;
    if (o->kind == L_SWAPEXT) return swapext(fd1, fd2);
    for (int i = 0; i < o->nseg; i++) {
      struct dx_exchange_range r = {.file1_fd = fd1, .file1_offset = o->a[3 * i],
                                    .file2_offset = o->a[3 * i + 1],
                                    .length = o->a[3 * i + 2]};
      if (ioctl(fd2, DX_IOC_EXCHANGE_RANGE, &r)) return errno;
    }
    return 0;
  }
  if (o->kind == L_REFLINK) {
    int sfd = open(path_of(o->ino), O_RDONLY);
    if (sfd < 0) return errno;
    int dfd = open(path_of(o->dst), O_RDWR);
    if (dfd < 0) return errno;
    for (int i = 0; i < o->nseg; i++) {
      struct file_clone_range r = {.src_fd = sfd, .src_offset = o->a[3 * i],
                                   .dest_offset = o->a[3 * i + 1],
                                   .src_length = o->a[3 * i + 2]};
      if (ioctl(dfd, FICLONERANGE, &r)) return errno;
    }
    return 0;
  }
  int fd = open(path_of(o->ino), O_RDWR);
  if (fd < 0) return errno;
  if (o->kind == L_PWRITE) return write_all(fd, o->a[0], o->a[1]);
  if (o->kind == L_TRUNC) return ftruncate(fd, o->a[0]) ? errno : 0;
  return fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, o->a[0], o->a[1]) ? errno : 0;
}

/* wait up to ms for pid; 1 when reaped (*code set), 0 when still running */
static int wait_for(pid_t pid, long ms, int *code) {
  double end = now_ms() + ms;
  for (;;) {
    int st;
    pid_t r = waitpid(pid, &st, WNOHANG);
    if (r == pid) {
      *code = WIFEXITED(st) ? WEXITSTATUS(st) : -WTERMSIG(st);
      return 1;
    }
    if (now_ms() >= end) return 0;
    usleep(2000);
  }
}

static void report_child(const char *prefix_note, int code, double ms) {
  if (code == 0) result("ok", ms, 0, "%s", prefix_note);
  else if (code < 0) result("err", ms, EINTR, "%s_killed_by_sig%d", prefix_note, -code);
  else result("err", ms, code, "%s", prefix_note);
}

static void check_pending(int reuse_for_step) {
  if (!pending_pid) return;
  int code;
  if (wait_for(pending_pid, reuse_for_step ? timeout_ms : 0, &code)) {
    double ms = now_ms() - pending_t0;
    int save = cur_step;
    if (!reuse_for_step) cur_step = pending_step;
    char note[64];
    snprintf(note, sizeof note, "pending_from_step_%d_finished_after_step_%d", pending_step,
             save - (reuse_for_step ? 0 : 1));
    if (!reuse_for_step) {
      printf("@@P step=%d done_ms=%.1f code=%d after_step=%d\n", pending_step, ms, code,
             save - 1);
      fflush(stdout);
    } else {
      report_child(note, code, ms);
    }
    cur_step = save;
    pending_pid = 0;
  } else if (reuse_for_step) {
    result("blocked", now_ms() - pending_t0, 0, "still_pending_from_step_%d", pending_step);
  }
}

/* "state=D,wchan=fn" of a task, from /proc */
static void task_state(pid_t pid, char *out, size_t n) {
  char p[64], st[512] = "", wc[96] = "?";
  char state = '?';
  snprintf(p, sizeof p, "/proc/%d/stat", pid);
  FILE *f = fopen(p, "r");
  if (f) {
    if (fgets(st, sizeof st, f)) {
      char *r = strrchr(st, ')');
      if (r && r[1]) state = r[2];
    }
    fclose(f);
  }
  snprintf(p, sizeof p, "/proc/%d/wchan", pid);
  f = fopen(p, "r");
  if (f) {
    size_t k = fread(wc, 1, sizeof wc - 1, f);
    wc[k] = 0;
    fclose(f);
  }
  snprintf(out, n, "state=%c,wchan=%s", state, wc[0] ? wc : "?");
}

/* 1 when a killed call left pending is still running after one more step timeout (its
 * end is reported as an @@P line when it comes) */
static int pending_still_runs(void) {
  int code;
  if (!pending_pid) return 0;
  if (wait_for(pending_pid, timeout_ms, &code)) {
    printf("@@P step=%d done_ms=%.1f code=%d after_step=%d\n", pending_step,
           now_ms() - pending_t0, code, cur_step - 1);
    pending_pid = 0;
    return 0;
  }
  return 1;
}

static void do_lop(struct lop *o) {
  /* A later umount is the model's retry of a pending umount.  A pending killed call of
     another kind (a reflink spinning in xfs_mmaplock_two_inodes_and_break_dax_layout(),
     which never checks for a fatal signal) is not this umount's result: it gets the
     step timeout below like before any other call. */
  if (o->kind == L_UMOUNT && pending_pid && pending_kind == L_UMOUNT) {
    check_pending(1);
    return;
  }
  if (pending_still_runs()) { /* a killed call still winding down: the step timeout */
    result("skip", 0, 0, "an_earlier_call_is_still_blocked_uninterruptibly");
    return;
  }
  double t0 = now_ms();
  pid_t pid = fork();
  if (pid < 0) { result("err", 0, errno, "fork"); return; }
  if (pid == 0) {
    close_channels();
    _exit(run_lop(o));
  }
  int code;
  if (wait_for(pid, timeout_ms, &code)) { report_child("", code, now_ms() - t0); return; }
  /* A call still running (state R: slow under software emulation, not waiting for
     anything) is not blocked: wait on while it runs, up to 10 s more. */
  for (double cap = now_ms() + 10000; now_ms() < cap;) {
    char st[160];
    task_state(pid, st, sizeof st);
    if (strncmp(st, "state=R", 7)) break;
    if (wait_for(pid, 50, &code)) { report_child("", code, now_ms() - t0); return; }
  }
  double ms = now_ms() - t0;
  char where[160];
  task_state(pid, where, sizeof where);
  if (o->kind != L_UMOUNT) { /* an interrupted wait, as the model's "blocked" op */
    kill(pid, SIGKILL);
    if (wait_for(pid, 2000, &code)) {
      result("blocked", ms, 0, "%s_interrupted_by_SIGKILL", where);
      return;
    }
  }
  pending_pid = pid;
  pending_step = cur_step;
  pending_t0 = t0;
  pending_kind = o->kind;
  result("blocked", ms, 0, "%s_left_pending", where);
}

static void do_mount(void) {
  double t0 = now_ms();
  int r = mount(dev, mnt, "xfs", 0, "dax=always");
  result(r ? "err" : "ok", now_ms() - t0, r ? errno : 0, NULL);
}

/* the XFS CoW extent size hint: CoW fork blocks are preallocated over this much around
 * a CoW write (xfs_reflink_allocate_cow, xfs_bmap_extsize_align).  Set while the file is
 * still empty; XFS's default is 32 blocks. */
static int set_cowextsize(int fd, long bytes) {
  struct fsxattr fa;
  if (ioctl(fd, FS_IOC_FSGETXATTR, &fa)) return errno;
  fa.fsx_xflags |= FS_XFLAG_COWEXTSIZE;
  fa.fsx_cowextsize = (unsigned)bytes;
  if (ioctl(fd, FS_IOC_FSSETXATTR, &fa)) return errno;
  if (ioctl(fd, FS_IOC_FSGETXATTR, &fa)) return errno;
  return fa.fsx_cowextsize == (unsigned)bytes && (fa.fsx_xflags & FS_XFLAG_COWEXTSIZE)
             ? 0 : EINVAL;
}

/* XFS_IOC_FSGEOMETRY_V1 (fs/xfs/libxfs/xfs_fs.h): the filesystem's feature flags, to
 * check that a program wanting the reverse map got it; -1 when not XFS */
struct xfs_fsop_geom_v1 {
  uint32_t blocksize, rtextsize, agblocks, agcount, logblocks, sectsize, inodesize, imaxpct;
  uint64_t datablocks, rtblocks, rtextents, logstart;
  unsigned char uuid[16];
  uint32_t sunit, swidth;
  int32_t version;
  uint32_t flags, logsectsize, rtsectsize, dirblocksize;
};
#define XFS_IOC_FSGEOMETRY_V1 _IOR('X', 100, struct xfs_fsop_geom_v1)
#define XFS_FSOP_GEOM_FLAGS_RMAPBT (1 << 19)
static int fs_rmapbt(int fd) {
  struct xfs_fsop_geom_v1 g;
  if (ioctl(fd, XFS_IOC_FSGEOMETRY_V1, &g)) return -1;
  return !!(g.flags & XFS_FSOP_GEOM_FLAGS_RMAPBT);
}

static void do_init(int n, long size, long cowextsize, long rmapbt) {
  for (int i = 0; i < n; i++) {
    int fd = open(path_of(i), O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
      printf("@@I error=%s file=%d\n", ename(errno), i);
      exit(3);
    }
    int e = cowextsize > 0 ? set_cowextsize(fd, cowextsize) : 0;
    if (e && !echo_steps) { /* the guest: a run without the hint would mislead */
      printf("@@I error=%s file=%d cowextsize=%ld (FS_IOC_FSSETXATTR)\n", ename(e), i,
             cowextsize);
      exit(3);
    }
    if (e && i == 0) /* a reproducer: say so, and go on (a plain directory, say) */
      printf("warning: cannot set a %ld-byte CoW extent size hint on %s (FS_IOC_FSSETXATTR:"
             " %s): not XFS with reflink? CoW writes will preallocate differently\n",
             cowextsize, path_of(i), ename(e));
    if (ftruncate(fd, size)) {
      printf("@@I error=%s file=%d\n", ename(errno), i);
      exit(3);
    }
    struct statx sx;
    int dax = -1;
    if (statx(fd, "", AT_EMPTY_PATH, STATX_BASIC_STATS, &sx) == 0)
      dax = !!(sx.stx_attributes & STATX_ATTR_DAX);
    int rmap = i == 0 && rmapbt >= 0 ? fs_rmapbt(fd) : -1;
    if (i == 0 && rmapbt >= 0 && rmap != rmapbt && !echo_steps) { /* the guest's /init */
      printf("@@I error=EINVAL rmapbt=%d wanted=%ld (the filesystem is not the kind the "
             "program asks for)\n", rmap, rmapbt);
      exit(3);
    }
    if (i == 0 && rmapbt >= 0 && rmap != rmapbt)
      printf("warning: the filesystem of %s has %s reverse-mapping btree (rmapbt): "
             "memory_failure holder=1 wants mkfs.xfs -m rmapbt=1\n", path_of(i),
             rmap < 0 ? "an unknown" : "no");
    if (i == 0) printf("@@I dax=%d files=%d size=%ld cowextsize=%ld%s\n", dax, n, size,
                       cowextsize, rmap == 1 ? " rmapbt=1" : "");
    if (i == 0 && echo_steps && dax != 1)
      printf("warning: %s is not DAX (statx STATX_ATTR_DAX %s): mount an fsdax pmem device "
             "with -o dax=always (see the header of this file)\n", path_of(i),
             dax < 0 ? "unknown" : "clear");
    close(fd);
  }
  sync();
  fflush(stdout);
}


/* the program interface (see the header) ------------------------------------------ */

/* before the first line; 0, or 3 when the process cannot be set up */
static int daxop_start(const char *mountpoint, const char *device, long step_timeout_ms) {
  mnt = mountpoint; dev = device; timeout_ms = step_timeout_ms;
  setvbuf(stdout, NULL, _IOLBF, 0);
  for (int i = 0; i < MAXH; i++) /* before any fork: every process shares them */
    if (pipe2(pipes[i], O_NONBLOCK)) { perror("pipe"); return 3; }
  if (pipe2(stage, O_NONBLOCK) || fcntl(stage[1], F_SETPIPE_SZ, MAXH * 4096) < MAXH * 4096) {
    perror("staging pipe");
    return 3;
  }
  base = mmap(NULL, SLOTSPAN * (MAXSLOTS + 1), PROT_NONE,
              MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (base == MAP_FAILED) { perror("reserve"); return 3; }
  base = (char *)(((uintptr_t)base + SLOTSPAN - 1) & ~(SLOTSPAN - 1)); /* PMD aligned */
  for (int s = 0; s < MAXSLOTS; s++) slots[s].win = base + s * SLOTSPAN;
  struct sigaction sa = {.sa_handler = on_fault};
  sigemptyset(&sa.sa_mask);
  sigaction(SIGBUS, &sa, NULL);
  sigaction(SIGSEGV, &sa, NULL);
  kmsg = open("/dev/kmsg", O_RDONLY | O_NONBLOCK);
  if (kmsg >= 0) lseek(kmsg, 0, SEEK_END);
  else if (echo_steps)
    printf("note: cannot read /dev/kmsg (%s): watch `dmesg -w` for the kernel's lines\n",
           strerror(errno));
  return 0;
}

/* one program line, in the director */
static void daxop_line(const char *text) {
  char line[4096];
  char cmd[32] = "";
  long a[MAXARGS];
  snprintf(line, sizeof line, "%s", text);
  int na = parse(line, cmd, a);
  if (na < 0 || cmd[0] == '#') return;
  char *p = line + strspn(line, " \t") + strlen(cmd);
  char *nl = strchr(p, '\n');
  if (nl) *nl = 0;
  if (!strcmp(cmd, "step")) {
    drain_kmsg();
    cur_step = atoi(p);
    check_pending(0);
    if (echo_steps) {
      p += strspn(p, " ");
      p += strspn(p, "0123456789");
      printf("== step %d:%s\n", cur_step, p);
    }
    return;
  }
  if (!strcmp(cmd, "skip") || !strcmp(cmd, "errno")) {
    while (*p == ' ') p++;
    if (!strcmp(cmd, "skip")) result("skip", 0, 0, "%s", p);
    else {
      printf("@@R step=%d status=err ms=0.0 errno=%s note=model_bookkeeping\n", cur_step, p);
      fflush(stdout);
    }
    return;
  }
  if (pending_pid && pending_kind != L_UMOUNT && strcmp(cmd, "release")) {
    /* A killed call that does not end (a reflink or exchange spinning on a pinned second
     * inode -- 6.1 and 7.2's xfs_mmaplock_two_inodes_and_break_dax_layout() has no signal
     * check -- with both inodes' i_rwsem and their MMAPLOCKs taken over and over) leaves
     * the kernel doing what no model step says, and a pwrite, fork, mmap or fault may wait
     * on it with the whole guest.  Only releases run (they may end it); the rest of the
     * trace is reported skipped, and the host compares no step after it.  See
     * docs/triage/killed-reflink-spins-on-pinned-second-inode.md. */
    result("skip", 0, 0, "a_killed_call_from_step_%d_still_runs", pending_step);
    return;
  }
  if (!strcmp(cmd, "init")) do_init((int)a[0], a[1], na > 2 ? a[2] : 0, na > 3 ? a[3] : -1);
  else if (!strcmp(cmd, "fork")) director_fork((int)a[0], (int)a[1], (int)a[2], line, a);
  else if (!strcmp(cmd, "gup")) {
    int h = (int)a[0];
    if (h < 0 || h >= MAXH) result("err", 0, EINVAL, "handle");
    else if (hkind[h]) result("err", 0, EEXIST, "handle_busy_(bookkeeping)");
    else if (dispatch(cmd, a, line)) hkind[h] = (int)a[4];
  } else if (!strcmp(cmd, "gupv")) { /* the handles: the director's bookkeeping */
    int h = (int)a[0], n = 0, busy = 0, bad = 0;
    for (int i = 0; i < a[3] && 5 + 2 * i < na; i++) {
      n += (int)a[5 + 2 * i];
      bad |= a[5 + 2 * i] < 1 || a[5 + 2 * i] > MAXH;
    }
    for (int k = 0; h >= 0 && k < n && h + k < MAXH; k++) busy |= hkind[h + k] != 0;
    if (bad || h < 0 || n < 1 || h + n > MAXH || a[3] < 1 || 4 + 2 * a[3] > na)
      result("err", 0, EINVAL, "handles");
    else if (busy) result("err", 0, EEXIST, "handle_busy_(bookkeeping)");
    else if (dispatch(cmd, a, line))
      for (int k = 0; k < n; k++) hkind[h + k] = 1;
  } else if (slot_of(cmd, a) >= 0) dispatch(cmd, a, line);
  else if (!strcmp(cmd, "release")) do_release((int)a[0], (int)a[1], na > 2 ? (int)a[2] : 1);
  else if (!strcmp(cmd, "mount")) do_mount();
  else {
    struct lop o;
    memset(&o, 0, sizeof o);
    if (!strcmp(cmd, "truncate")) { o.kind = L_TRUNC; o.ino = (int)a[0]; o.a[0] = a[1]; }
    else if (!strcmp(cmd, "punch")) {
      o.kind = L_PUNCH; o.ino = (int)a[0]; o.a[0] = a[1]; o.a[1] = a[2];
    } else if (!strcmp(cmd, "pwrite")) {
      o.kind = L_PWRITE; o.ino = (int)a[0]; o.a[0] = a[1]; o.a[1] = a[2];
    } else if (!strcmp(cmd, "reflink") || !strcmp(cmd, "exchange")) {
      o.kind = cmd[0] == 'r' ? L_REFLINK : L_EXCHANGE;
      o.ino = (int)a[0]; o.dst = (int)a[1]; o.nseg = (int)a[2];
      if (o.nseg > 16) o.nseg = 16;
      for (int i = 0; i < 3 * o.nseg; i++) o.a[i] = a[3 + i];
    } else if (!strcmp(cmd, "swapext")) {
      o.kind = L_SWAPEXT; o.ino = (int)a[0]; o.dst = (int)a[1];
    } else if (!strcmp(cmd, "umount")) o.kind = L_UMOUNT;
    else { result("skip", 0, 0, "unknown_command_%s", cmd); return; }
    do_lop(&o);
  }
}

/* after the last line: release references, end the workers, unmap, finish a pending call */
static int daxop_end(void) {
  drain_kmsg();
  for (int h = 0; h < MAXH; h++) drain(h);
  end_workers();
  for (int s = 0; s < MAXSLOTS; s++)
    for (int i = 0; i < slots[s].np; i++)
      munmap(addr_of(s, slots[s].p[i].lo), slots[s].p[i].hi - slots[s].p[i].lo);
  if (pending_pid) {
    int code;
    cur_step = pending_step;
    if (wait_for(pending_pid, timeout_ms * 2, &code))
      printf("@@P step=%d done_ms=%.1f code=%d after_step=end\n", pending_step,
             now_ms() - pending_t0, code);
    else printf("@@P step=%d still_blocked_at_end\n", pending_step);
  }
  drain_kmsg();
  printf("@@E done\n");
  fflush(stdout);
  return 0;
}

/* daxop: run one daxfuzz guest program file on a real fs-DAX filesystem.
 *
 * Built on the host with `gcc -static -O2` by `daxfuzz kernel setup`; runs as PID 1's
 * child in the guest initramfs.  Usage: daxop PROGRAM MOUNTPOINT DEVICE TIMEOUT_MS
 * The commands, the program format and the output are daxlib.c's (shared, verbatim,
 * with the reproducers `daxfuzz kernel repro` writes); this is only the file reader,
 * plus daxpages.c (raw struct page dumps, `kernel run`/`fuzz` only: not in reproducers).
 */
#include "daxlib.c"
#include "daxpages.c"

int main(int argc, char **argv) {
  if (argc < 5) { fprintf(stderr, "usage: daxop PROGRAM MNT DEV TIMEOUT_MS\n"); return 2; }
  FILE *f = fopen(argv[1], "r");
  if (!f) { perror(argv[1]); return 2; }
  int r = daxop_start(argv[2], argv[3], atol(argv[4]));
  if (r) return r;
  char line[4096];
  while (fgets(line, sizeof line, f))
    if (!daxpages_line(line)) daxop_line(line);
  return daxop_end();
}

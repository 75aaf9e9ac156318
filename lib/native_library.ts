/**
 * Where vger's native libraries (libc, OpenSSL's libcrypto, liblz4, libargon2) are opened from. A bare name
 * (`libc.so.6`) works with an unscoped `--allow-ffi`; a scoped grant names a file, and Deno then
 * takes a bare name as a path in the working directory, so the libraries are also tried by their
 * usual absolute paths. The launcher (lib/cli_launch.ts) grants the first of these that exists.
 *
 * @module
 */

/** The directories a distribution keeps its shared libraries in, most common first. */
const LIBRARY_DIRS = [
  "/lib/x86_64-linux-gnu",
  "/usr/lib/x86_64-linux-gnu",
  "/lib/aarch64-linux-gnu",
  "/usr/lib/aarch64-linux-gnu",
  "/lib64",
  "/usr/lib64",
  "/usr/lib",
  "/lib",
];

/** The names to try for a library: the bare name, then each usual absolute path. */
export function libraryCandidates(name: string): string[] {
  return [name, ...LIBRARY_DIRS.map((dir) => `${dir}/${name}`)];
}

/** glibc's C library. */
export const LIBC = "libc.so.6";
/** OpenSSL 3's libcrypto. */
export const LIBCRYPTO = "libcrypto.so.3";
/** The reference lz4 library. */
export const LIBLZ4 = "liblz4.so.1";
/** The reference Argon2 library. */
export const LIBARGON2 = "libargon2.so.1";

/**
 * Opens the first candidate of `name` this process may load (asked first: a bare dlopen would
 * prompt on a terminal), or null when none is granted or loads.
 */
export function openLibrary<S extends Deno.ForeignLibraryInterface>(
  name: string,
  symbols: S,
): Deno.DynamicLibrary<S> | null {
  if (Deno.build.os !== "linux") return null;
  for (const candidate of libraryCandidates(name)) {
    if (Deno.permissions.querySync({ name: "ffi", path: candidate }).state !== "granted") continue;
    try {
      return Deno.dlopen(candidate, symbols);
    } catch {
      // not there, or lacking a symbol: the next one
    }
  }
  return null;
}

const mem = () => Math.round(Number(Deno.readTextFileSync("/proc/self/status").match(/VmRSS:\s*(\d+)/)![1]) / 1024);
for (const spec of Deno.args) {
  const t0 = performance.now(); const m0 = mem();
  await import(spec.startsWith("npm:") || spec.startsWith("node:") ? spec : "/work/wt/startup/" + spec);
  console.log(spec.padEnd(36), (performance.now() - t0).toFixed(1).padStart(6), "ms", (mem() - m0).toString().padStart(4), "MiB");
}

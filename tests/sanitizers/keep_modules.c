/* keep_modules: linked into every executable of the sanitizer build only (VKLM_SANITIZE).
 * The Vulkan loader unloads the driver (lavapipe, with LLVM) and the validation layer when the
 * instance is destroyed; LeakSanitizer then sees their allocations that outlive the process with
 * stack frames in unmapped code ("<unknown module>"), which no suppression can name. This
 * dlclose, exported from the executable so that the loader's calls bind to it, keeps every
 * library mapped: their frames symbolize, and tests/sanitizers/lsan.supp can suppress them by
 * module. Our own code never calls dlclose. */
int dlclose(void *handle);
int dlclose(void *handle) {
  (void)handle;
  return 0;
}

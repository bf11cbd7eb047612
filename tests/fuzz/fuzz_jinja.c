/* fuzz_jinja: chat templates (the Jinja subset: vklm_jinja_parse, vklm_jinja_render). The input
 * is the template, optionally followed by "\n#vars\n" and the variables as JSON (else a fixed
 * conversation). Rendering runs under small limits so a template cannot stall the fuzzer; the
 * limits themselves are what is tested there. A template that parses is also compiled as a
 * chat template (its stop strings). */
#include "chat/chat.h"
#include "chat/jinja.h"
#include "fuzz_util.h"

static const char default_vars[] =
    "{\"messages\": [{\"role\": \"system\", \"content\": \"Be brief.\"}, {\"role\": \"user\", "
    "\"content\": \"Hi <|im_end|> \\u00e9\"}, {\"role\": \"assistant\", \"content\": \"Hello.\"}, "
    "{\"role\": \"user\", \"content\": \"Again?\"}], \"add_generation_prompt\": true, "
    "\"bos_token\": \"<s>\", \"eos_token\": \"</s>\", \"tools\": [{\"name\": \"f\", "
    "\"parameters\": {\"x\": 1.5, \"y\": [1, 2, null, false]}}]}";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const uint8_t *a, *b;
  size_t na, nb;
  fuzz_split(data, size, "\n#vars\n", &a, &na, &b, &nb);
  char *vars = nb ? fuzz_strdup(b, nb) : NULL;
  vklm_jinja *t = NULL;
  char err[512];
  if (vklm_jinja_parse((const char *)a, na, &t, err, sizeof err) == VKLM_OK) {
    vklm_jinja_limits lim;
    vklm_jinja_limits_default(&lim);
    lim.max_output = 1 << 16;
    lim.max_steps = 20000;
    lim.max_memory = 16 << 20;
    lim.max_depth = 16;
    vklm_jinja_opts o = {.now = 1700000000, .limits = &lim};
    char *out = NULL;
    size_t outlen = 0;
    if (vklm_jinja_render(t, vars ? vars : default_vars, &o, &out, &outlen, err, sizeof err) ==
        VKLM_OK) {
      if (!out) abort();
    } else if (out) {
      abort(); /* on failure *out is NULL */
    }
    free(out);
    vklm_jinja_destroy(t);
    vklm_chat_template *ct = NULL;
    if (vklm_chat_template_create((const char *)a, na, "<s>", "</s>", &ct, err, sizeof err) ==
        VKLM_OK) {
      const char *stops[8];
      (void)vklm_chat_template_stops(ct, stops, 8);
      vklm_chat_template_destroy(ct);
    }
  }
  free(vars);
  return 0;
}

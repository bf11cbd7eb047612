/* vklm: one program, many sub-commands (vklm <command> [flags]). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "flags.h"

typedef struct command {
  const char *name;
  int (*fn)(int argc, char **argv);
  const char *help;
} command;

static const command commands[] = {
    {"devices", cmd_devices, "list Vulkan devices and their capabilities (--json)"},
    {"bench", cmd_bench, "benchmarks: `vklm bench` (the device's benchmark card), `bench ops|train|infer|tokenizer`"},
    {"tokenizer", cmd_tokenizer, "byte-level BPE: train, encode, decode, convert"},
    {"data", cmd_data, "text pipeline: prepare (clean, filter, dedup), tokenize (shards)"},
    {"train", cmd_train, "pretrain a GPT-2/Llama model from shards or text (checkpoints, resume)"},
    {"sft", cmd_sft, "supervised fine-tuning on prompt/completion or chat JSONL (loss on answers)"},
    {"rank", cmd_rank, "sample K responses per prompt and rank them (terminal, browser, simulated)"},
    {"reward", cmd_reward, "reward model: train on rankings/preferences, score responses"},
    {"dpo", cmd_dpo, "direct preference optimisation against a frozen reference model"},
    {"ppo", cmd_ppo, "RLHF: PPO against a reward model with a KL penalty to a frozen reference"},
    {"report", cmd_report, "the life-cycle report of a run: each stage's figures, plots, answers"},
    {"export", cmd_export, "checkpoint -> safetensors (HF names + config.json) or GGUF"},
    {"convert", cmd_convert, "HF directory (safetensors) or GGUF (gpt2, llama) -> checkpoint"},
    {"eval-logits", cmd_eval_logits, "a checkpoint's logits for one token sequence (tests)"},
    {"generate", cmd_generate, "text from a checkpoint: KV cache on the GPU, llama.cpp sampling"},
    {"chat", cmd_chat, "interactive chat through the model's own chat template"},
    {"serve", cmd_serve, "OpenAI-compatible HTTP server with a web chat page (batched slots)"},
    {"template", cmd_template, "render a chat template over a JSON conversation (or its tokens)"},
    {"eval", cmd_eval, "measure a model: perplexity, multiple choice, generation, robustness, bias"},
    {"inspect", cmd_inspect, "GGUF/safetensors: metadata, tensor table, dump a tensor as fp32"},
};

static void usage(FILE *f) {
  fprintf(f, "usage: vklm <command> [flags]\n\ncommands:\n");
  for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
    fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].help);
  fprintf(f, "\n`vklm <command> --help` describes a command's flags; `vklm --version`.\n");
}

int main(int argc, char **argv) {
  if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
    usage(argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  if (!strcmp(argv[1], "--version")) return printf("vklm %s\n", app_version()), 0;
  for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
    if (!strcmp(argv[1], commands[i].name)) return commands[i].fn(argc - 1, argv + 1);
  fprintf(stderr, "vklm: unknown command '%s'\n\n", argv[1]);
  usage(stderr);
  return 2;
}

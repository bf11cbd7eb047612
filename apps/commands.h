/* The sub-commands of the vklm program. Each parses its own flags (argv[0] is the sub-command's
 * name) and returns the process exit status: 0 success, 1 failure, 2 bad usage. */
#ifndef VKLM_APPS_COMMANDS_H
#define VKLM_APPS_COMMANDS_H

int cmd_devices(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_tokenizer(int argc, char **argv);
/* `vklm tokenizer bench` (also reachable from `vklm bench`): encode MB/s and training time. */
int bench_tokenizer(int argc, char **argv);
int cmd_data(int argc, char **argv);
/* `vklm train` (pretraining) and `vklm export` (checkpoint -> safetensors): apps/cmd_train.c. */
int cmd_train(int argc, char **argv);
/* `vklm sft`: supervised fine-tuning, the training loop over JSONL examples (cmd_train.c). */
int cmd_sft(int argc, char **argv);
/* `vklm reward train|score`, `vklm dpo`, `vklm rank`: alignment (cmd_align.c, cmd_rank.c). */
int cmd_reward(int argc, char **argv);
int cmd_dpo(int argc, char **argv);
int cmd_ppo(int argc, char **argv); /* `vklm ppo`: RLHF with PPO (cmd_ppo.c) */
int cmd_rank(int argc, char **argv);
/* `vklm report`: the life-cycle report of a quickstart run directory (apps/cmd_report.c). */
int cmd_report(int argc, char **argv);
int cmd_export(int argc, char **argv);
/* `vklm convert` (HF dir / GGUF -> checkpoint) and `vklm eval-logits` (a checkpoint's logits for
 * one sequence, for tests): apps/cmd_convert.c. */
int cmd_convert(int argc, char **argv);
int cmd_eval_logits(int argc, char **argv);
/* `vklm generate`: text from a checkpoint with the GPU KV cache (apps/cmd_generate.c). */
int cmd_generate(int argc, char **argv);
/* `vklm chat`: an interactive conversation through the chat template (apps/cmd_chat.c). */
int cmd_chat(int argc, char **argv);
/* `vklm serve`: an OpenAI-compatible HTTP server (apps/cmd_serve.c, engine/serve). */
int cmd_serve(int argc, char **argv);
/* `vklm template`: renders a chat template over a JSON conversation (apps/cmd_template.c). */
int cmd_template(int argc, char **argv);
/* `vklm inspect`: GGUF/safetensors metadata, tensors, dumps (apps/cmd_inspect.c). */
int cmd_inspect(int argc, char **argv);
/* `vklm eval`: perplexity, tasks, robustness, bias probes, reports (apps/cmd_eval.c). */
int cmd_eval(int argc, char **argv);
/* `vklm bench train`: tokens/s, ms/step, MFU, peak memory (apps/bench_train.c). */
int bench_train(int argc, char **argv);
/* `vklm bench infer`: prefill and decode tokens/s, session memory (apps/bench_infer.c). */
int bench_infer(int argc, char **argv);
/* `vklm bench [all]`: the device's benchmark card, a table, --json or --md (apps/bench_card.c). */
int bench_card(int argc, char **argv);

#endif

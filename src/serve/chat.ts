// Chat messages -> one prompt string. A model folder with a chat template (tokenizer_config.json's
// `chat_template`, or chat_template.jinja / chat_template.json beside it, as transformers saves
// them) renders the messages with it, like transformers' apply_chat_template with
// add_generation_prompt=True. Without one (base models such as GPT-J), the plain format below
// applies. `--chat-template FILE` overrides both.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Template } from '@huggingface/jinja';
import { ModelError } from '../errors.js';
import { invalidParam } from './errors.js';

export interface ChatMessage {
  role: string;
  content: string;
  name?: string;
}

/** A template's own complaint about the messages (its `raise_exception(...)`): the client's fault. */
export class ChatTemplateRejection extends Error {}

type Json = Record<string, unknown>;

function readJsonObject(file: string): Json {
  let value: unknown;
  try {
    value = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new ModelError(`${file}: not valid JSON: ${(err as Error).message}`, { cause: err });
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new ModelError(`${file}: expected a JSON object`);
  return value as Json;
}

/** `chat_template` is a string, or a list of named templates of which "default" is the one used. */
function pickTemplate(value: unknown, where: string): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value === 'string') return value;
  if (Array.isArray(value)) {
    const named = value.filter((t): t is { name: string; template: string } => !!t && typeof t === 'object' && typeof t.template === 'string');
    const chosen = named.find((t) => t.name === 'default') ?? named[0];
    if (chosen) return chosen.template;
  }
  throw new ModelError(`${where}: chat_template must be a string or a list of {name, template}`);
}

/** `bos_token` etc. are strings or AddedToken objects `{content}`. */
function tokenText(value: unknown): string {
  if (typeof value === 'string') return value;
  if (value && typeof value === 'object' && typeof (value as Json).content === 'string') return (value as Json).content as string;
  return '';
}

/** The name the template's `raise_exception` is renamed to, so that its calls reach our function. */
const RAISE = '__uit_raise_exception';

/**
 * Renames an identifier throughout a parsed template. @huggingface/jinja's built-in raise_exception
 * cannot be replaced (render() refuses to redeclare it) and throws a plain Error, which would be
 * indistinguishable from a broken template; renamed, the calls reach a function of ours.
 */
function renameIdentifier(node: unknown, from: string, to: string, seen = new Set<object>()): void {
  if (node === null || typeof node !== 'object' || seen.has(node)) return;
  seen.add(node);
  const n = node as { type?: unknown; value?: unknown };
  if (n.type === 'Identifier' && n.value === from) n.value = to;
  for (const child of Object.values(node)) renameIdentifier(child, from, to, seen);
}

const label = (role: string): string => role.charAt(0).toUpperCase() + role.slice(1);

/**
 * The plain format, for models without a chat template: a conversation that is one user message
 * is sent as its content verbatim (a base model continues it exactly as /v1/completions would);
 * anything longer becomes a transcript of "Role: content" paragraphs ending in "Assistant:".
 */
export function plainChatPrompt(messages: readonly ChatMessage[]): string {
  if (messages.length === 1 && messages[0].role === 'user') return messages[0].content;
  return `${messages.map((m) => `${label(m.role)}: ${m.content}`).join('\n\n')}\n\nAssistant:`;
}

export class ChatFormatter {
  private constructor(
    /** Where the format comes from, for the start line and the docs: a file path, or `plain`. */
    readonly source: string,
    private readonly template: Template | undefined,
    private readonly specialTokens: Record<string, string>,
  ) {}

  get kind(): 'template' | 'plain' {
    return this.template ? 'template' : 'plain';
  }

  /** The model folder's chat template (or `overrideFile`'s), else the plain format. */
  static forModelFolder(dir: string, overrideFile?: string): ChatFormatter {
    const configFile = join(dir, 'tokenizer_config.json');
    const config = existsSync(configFile) ? readJsonObject(configFile) : {};
    const specials: Record<string, string> = {};
    for (const name of ['bos_token', 'eos_token', 'pad_token', 'unk_token']) specials[name] = tokenText(config[name]);

    let source: string | undefined;
    let text: string | undefined;
    if (overrideFile !== undefined) {
      try {
        text = readFileSync(overrideFile, 'utf8');
      } catch (err) {
        throw new ModelError(`cannot read the chat template ${overrideFile}: ${(err as Error).message}`, { cause: err });
      }
      source = overrideFile;
    } else {
      const jinjaFile = join(dir, 'chat_template.jinja');
      const jsonFile = join(dir, 'chat_template.json');
      text = pickTemplate(config.chat_template, configFile);
      if (text !== undefined) source = `${configFile} (chat_template)`;
      else if (existsSync(jinjaFile)) [text, source] = [readFileSync(jinjaFile, 'utf8'), jinjaFile];
      else if (existsSync(jsonFile)) [text, source] = [pickTemplate(readJsonObject(jsonFile).chat_template, jsonFile), jsonFile];
    }
    if (text === undefined || source === undefined) return new ChatFormatter('plain', undefined, specials);
    let template: Template;
    try {
      template = new Template(text);
    } catch (err) {
      throw new ModelError(`${source}: the chat template does not parse: ${(err as Error).message}`, { cause: err });
    }
    renameIdentifier(template.parsed, 'raise_exception', RAISE);
    return new ChatFormatter(source, template, specials);
  }

  static plain(): ChatFormatter {
    return new ChatFormatter('plain', undefined, {});
  }

  /**
   * The prompt for `messages`. A template's raise_exception becomes a 400 on `messages`; any other
   * failure of the template is the model folder's problem and propagates (a 500 for the client).
   */
  format(messages: readonly ChatMessage[]): string {
    if (!this.template) return plainChatPrompt(messages);
    try {
      return this.template.render({
        ...this.specialTokens,
        messages: messages.map((m) => ({ ...m })),
        add_generation_prompt: true,
        [RAISE]: (message: unknown) => {
          throw new ChatTemplateRejection(String(message));
        },
      });
    } catch (err) {
      if (err instanceof ChatTemplateRejection) throw invalidParam('messages', `The chat template rejected the messages: ${err.message}`);
      throw err;
    }
  }
}

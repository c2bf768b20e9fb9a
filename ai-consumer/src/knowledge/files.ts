import { readdir, stat } from 'node:fs/promises';
import { basename, join, relative, sep } from 'node:path';
import type { KnowledgeSource } from './options.js';

/** What a folder source indexes; a single-file source is read whatever its name. */
export const KNOWLEDGE_EXTENSIONS = ['.md', '.markdown', '.mdx', '.txt', '.text'] as const;

/** Bigger files are skipped with a warning: a knowledge base is prose, not a dump. */
export const MAX_FILE_BYTES = 5 * 1024 * 1024;

/** Files a folder may hold before the rest are ignored (with a warning). */
export const MAX_FILES = 10_000;

export interface KnowledgeFile {
  /** The source name shown to the model and in `sources`: path relative to the folder, `/`-separated. */
  name: string;
  path: string;
  mtimeMs: number;
  size: number;
}

const indexed = (name: string): boolean =>
  KNOWLEDGE_EXTENSIONS.some((ext) => name.toLowerCase().endsWith(ext));

/**
 * The files of a source with their mtime and size: the file itself, or every indexed file under the
 * folder (recursively; dot files and folders skipped, symlinks to files followed, to folders not,
 * so a link cannot make a loop). Throws when the source itself cannot be read.
 */
export async function listFiles(
  source: KnowledgeSource,
): Promise<{ files: KnowledgeFile[]; truncated: boolean }> {
  if (source.kind === 'file') {
    const s = await stat(source.path);
    return {
      files: [{ name: basename(source.path), path: source.path, mtimeMs: s.mtimeMs, size: s.size }],
      truncated: false,
    };
  }
  const files: KnowledgeFile[] = [];
  let truncated = false;
  const walk = async (dir: string): Promise<void> => {
    const entries = await readdir(dir, { withFileTypes: true });
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const entry of entries) {
      if (entry.name.startsWith('.')) continue;
      const path = join(dir, entry.name);
      if (entry.isDirectory()) {
        await walk(path);
        continue;
      }
      if (!indexed(entry.name) || !(entry.isFile() || entry.isSymbolicLink())) continue;
      // Gone or a link to a folder between readdir and stat: not a file to index.
      const s = await stat(path).catch(() => undefined);
      if (!s?.isFile()) continue;
      if (files.length >= MAX_FILES) {
        truncated = true;
        return;
      }
      files.push({
        name: relative(source.path, path).split(sep).join('/'),
        path,
        mtimeMs: s.mtimeMs,
        size: s.size,
      });
    }
  };
  await walk(source.path);
  return { files, truncated };
}

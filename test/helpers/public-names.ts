import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

/**
 * The property names a user of the browser bundle can touch, read from the compiled
 * declarations (dist/, `npm run build`): every member of the declarations that
 * dist/peer/index.d.ts exports, and of every type their members mention, transitively.
 * Private members, constructors (users get rooms and peers, they do not build them) and
 * members documented `@internal` are not followed. Protected members count: a user may
 * subclass an exported class (TypedEmitter).
 */
export function publicNames(root: string): Set<string> {
  const index = join(root, 'dist/peer/index.d.ts');
  if (!existsSync(index)) throw new Error(`${index} is missing: run npm run build first`);
  const files: string[] = [];
  const list = (dir: string): void => {
    for (const f of readdirSync(dir)) {
      const p = join(dir, f);
      if (statSync(p).isDirectory()) list(p);
      else if (p.endsWith('.d.ts')) files.push(p);
    }
  };
  for (const dir of ['dist/peer', 'dist/signaling/client', 'dist/signaling/protocol']) list(join(root, dir));
  // Declaration name -> its text (an interface's or class's body, a type alias's right side).
  const declarations = new Map<string, string>();
  for (const f of files) {
    const text = readFileSync(f, 'utf8');
    for (const m of text.matchAll(/^(?:export )?(?:declare )?(?:abstract )?(?:interface|class|type)\s+([A-Za-z_$][\w$]*)([^\n]*?)(?:\{\n([\s\S]*?)^\}|=([\s\S]*?);\n(?=\S|$))/gm)) {
      const name = m[1] as string;
      declarations.set(name, `${declarations.get(name) ?? ''}\n${m[2]}\n${m[3] ?? m[4] ?? ''}`);
    }
  }
  const roots = [index, join(root, 'dist/signaling/client/index.d.ts')].map((f) => readFileSync(f, 'utf8')).join('\n');
  const names = new Set<string>();
  const seen = new Set<string>();
  const visit = (name: string): void => {
    const text = declarations.get(name);
    if (text === undefined || seen.has(name)) return;
    seen.add(name);
    let skipNext = false;
    for (const line of text.split('\n')) {
      if (line.includes('@internal')) {
        skipNext = true;
        continue;
      }
      if (/^\s*(\/\*\*|\*)/.test(line)) continue;
      if (skipNext) {
        skipNext = /^\s*$/.test(line);
        continue;
      }
      if (/^\s*(private\b|#private|constructor\b)/.test(line)) continue;
      const member = line.match(/^\s*(?:(?:readonly|static|get|set|abstract|protected)\s+)*['"]?([A-Za-z_$][\w$-]*)['"]?\??\s*[:(<]/);
      if (member?.[1]) names.add(member[1]);
      for (const t of line.matchAll(/\b([A-Z][\w$]*)\b/g)) visit(t[1] as string);
    }
  };
  for (const m of roots.matchAll(/\b([A-Z][\w$]*)\b/g)) visit(m[1] as string);
  return names;
}

#!/usr/bin/env node
// Builds the image of ./Dockerfile from a bundle and runs the README's examples in it as written:
// the Kubernetes Indexed Job (every index, then docs/pipeline.md's merge), and the Slurm scripts of
// the README and of docs/pipeline.md with a stand-in `sbatch` that runs an array's tasks one after
// the other inside the image. Every run is the image's user, with no network, with held-out Ni-v2
// tasks as data and models/uit-tiny as models/gpt-j-uit. Needs a container engine and the base
// image (docs/airgap.md, "Checking the image"); not part of `npm test`.
//
//   node scripts/check-image.mjs uit-0.1.0-linux-x64.tar.gz [--engine docker|podman|buildah]
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { parse } from 'yaml';

const REPO = resolve(import.meta.dirname, '..');
const args = process.argv.slice(2);
const bundleFile = args.find((a) => a.endsWith('.tar.gz'));
const engineArg = args.includes('--engine') ? args[args.indexOf('--engine') + 1] : null;
if (!bundleFile) {
  console.error('usage: node scripts/check-image.mjs BUNDLE.tar.gz [--engine docker|podman|buildah]');
  process.exit(2);
}
const pkg = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8'));
const readme = readFileSync(join(REPO, 'README.md'), 'utf8');
const pipelineDoc = readFileSync(join(REPO, 'docs/pipeline.md'), 'utf8');

/** The fenced blocks of a Markdown text, with their language. */
function blocks(md) {
  return [...md.matchAll(/^```(\w*)\n([\s\S]*?)^```$/gm)].map((m) => ({ lang: m[1], text: m[2] }));
}
const one = (list, what) => {
  if (list.length !== 1) throw new Error(`expected one ${what}, found ${list.length}`);
  return list[0];
};

const works = (cmd) => spawnSync(cmd[0], cmd.slice(1), { stdio: 'ignore' }).status === 0;
const engine = engineArg ?? (works(['docker', 'info']) ? 'docker' : works(['podman', 'info']) ? 'podman' : 'buildah');
console.log(`engine: ${engine}`);

function sh(cmd, opts = {}) {
  console.log(`$ ${cmd.join(' ')}`.slice(0, 300));
  const r = spawnSync(cmd[0], cmd.slice(1), { stdio: 'inherit', ...opts });
  if (r.status !== 0) throw new Error(`exit ${r.status}: ${cmd.join(' ')}`.slice(0, 500));
}

// 1. build, from a context holding only the Dockerfile and the bundle
const k8s = parse(one(blocks(readme).filter((b) => b.lang === 'yaml' && b.text.includes('kind: Job')), 'Kubernetes Job in README.md').text);
const pod = k8s.spec.template.spec;
const container = pod.containers[0];
const image = container.image;
if (image !== `registry.example.com/${pkg.name}:${pkg.version}`) throw new Error(`README's image ${image} is not version ${pkg.version}`);
const tmp = mkdtempSync(join(tmpdir(), 'uit-check-image-'));
const ctx = join(tmp, 'context');
mkdirSync(ctx);
copyFileSync(join(REPO, 'Dockerfile'), join(ctx, 'Dockerfile'));
copyFileSync(resolve(bundleFile), join(ctx, basename(bundleFile)));
const buildArgs = ['--build-arg', `BUNDLE=${basename(bundleFile)}`, '-t', image, ctx];
if (engine === 'buildah') sh(['buildah', 'bud', '--isolation', 'chroot', '--pull-never', ...buildArgs]);
else sh([engine, 'build', ...buildArgs]);

// 2. the volumes: held-out Ni-v2 tasks, uit-tiny standing in for the GPT-J, a work folder
const data = join(tmp, 'data');
mkdirSync(join(data, 'niv2/tasks'), { recursive: true });
for (const t of ['task1413_dart_object_identification.json', 'task1411_dart_subject_identification.json']) {
  copyFileSync(join(REPO, '../shared/data/niv2/tasks', t), join(data, 'niv2/tasks', t));
}
const models = join(tmp, 'models');
cpSync(join(REPO, 'models/uit-tiny'), join(models, 'gpt-j-uit'), { recursive: true });
/** A work folder as fsGroup leaves it: group 10001, group-writable, setgid. */
function workDir(name) {
  const dir = join(tmp, name);
  mkdirSync(dir);
  execFileSync('chown', [`0:${pod.securityContext.fsGroup}`, dir]);
  chmodSync(dir, 0o2775);
  return dir;
}

const user = `${pod.securityContext.runAsUser}:${pod.securityContext.fsGroup}`;
let ctr = null;
/** Runs a command in the image as the pod's user, with no network. */
function inImage(cmd, { env = {}, mounts = [], workdir } = {}) {
  if (engine === 'buildah') {
    ctr ??= execFileSync('buildah', ['from', '--pull-never', image], { encoding: 'utf8' }).trim();
    const flags = ['--isolation', 'chroot', '--user', user];
    for (const [k, v] of Object.entries(env)) flags.push('--env', `${k}=${v}`);
    for (const m of mounts) flags.push('-v', `${m.host}:${m.path}${m.readOnly ? ':ro' : ''}`);
    if (workdir) flags.push('--workingdir', workdir);
    sh(['unshare', '-n', 'buildah', 'run', ...flags, ctr, '--', ...cmd]);
  } else {
    const flags = ['--rm', '--network', 'none', '--user', user];
    for (const [k, v] of Object.entries(env)) flags.push('-e', `${k}=${v}`);
    for (const m of mounts) flags.push('-v', `${m.host}:${m.path}${m.readOnly ? ':ro' : ''}`);
    if (workdir) flags.push('-w', workdir);
    sh([engine, 'run', ...flags, image, ...cmd]);
  }
}

function expectTasks(dir) {
  const got = readdirSync(dir).filter((f) => f.endsWith('.json')).sort();
  if (got.length !== 2) throw new Error(`${dir}: expected the 2 tasks, found ${got.join(', ') || 'none'}`);
  console.log(`ok: ${dir} has ${got.join(', ')}`);
}

try {
  // 3. Kubernetes: every index of the Indexed Job, then the merge pod of docs/pipeline.md
  const work = workDir('k8s-work');
  const hostOf = { models, data, work };
  const mounts = container.volumeMounts.map((m) => ({ host: hostOf[m.name], path: m.mountPath, readOnly: m.readOnly }));
  for (let i = 0; i < k8s.spec.completions; i++) {
    inImage([...container.command, ...container.args], { env: { JOB_COMPLETION_INDEX: String(i) }, mounts });
  }
  const merge = one(blocks(pipelineDoc).filter((b) => b.lang === 'sh' && b.text.startsWith('uit cache merge /work/')), 'merge pod in docs/pipeline.md').text;
  inImage(['/bin/sh', '-c', `set -e\n${merge}`], { mounts });
  expectTasks(join(work, 'final'));

  // 4. Slurm: a stand-in sbatch (runs an array's tasks one after another; --wrap and afterok)
  const shim = join(tmp, 'slurm');
  mkdirSync(shim);
  writeFileSync(
    join(shim, 'sbatch'),
    `#!/bin/bash
# A stand-in for Slurm's sbatch, in one container: runs each task of --array, then dependents.
set -u
wrap=""; file=""
while [ $# -gt 0 ]; do
  case "$1" in
    --parsable|--dependency=*) ;;
    --wrap) wrap="$2"; shift ;;
    *) file="$1" ;;
  esac
  shift
done
if [ -n "$wrap" ]; then [ ! -e .sbatch-failed ] || exit 1; exec bash -c "$wrap"; fi
range=$(sed -n 's/^#SBATCH.*--array=\\([0-9]*-[0-9]*\\).*/\\1/p' "$file")
cpus=$(sed -n 's/^#SBATCH.*--cpus-per-task=\\([0-9]*\\).*/\\1/p' "$file" | head -1)
if [ -n "$range" ]; then
  for k in $(seq "\${range%-*}" "\${range#*-}"); do
    SLURM_ARRAY_TASK_ID=$k SLURM_CPUS_PER_TASK=\${cpus:-1} bash "$file" || touch .sbatch-failed
  done
else
  [ ! -e .sbatch-failed ] || exit 1
  SLURM_CPUS_PER_TASK=\${cpus:-1} bash "$file" || exit 1
fi
echo 1
`,
  );
  chmodSync(join(shim, 'sbatch'), 0o755);
  const slurm = (name, scripts, submit) => {
    const dir = workDir(name);
    cpSync(data, join(dir, 'data'), { recursive: true });
    cpSync(models, join(dir, 'models'), { recursive: true });
    for (const d of ['work', 'logs']) mkdirSync(join(dir, d));
    for (const [file, text] of Object.entries(scripts)) writeFileSync(join(dir, file), text);
    execFileSync('chown', ['-R', user, dir]);
    inImage(['/bin/bash', '-c', `set -e\nexport PATH=/slurm:$PATH\n${submit}\n[ ! -e .sbatch-failed ]`], {
      mounts: [{ host: dir, path: '/job' }, { host: shim, path: '/slurm', readOnly: true }],
      workdir: '/job',
    });
    return dir;
  };
  const rb = blocks(readme).filter((b) => b.lang === 'bash');
  const convert = one(rb.filter((b) => b.text.includes('#SBATCH --array')), 'Slurm array script in README.md').text;
  const submit = one(rb.filter((b) => b.text.includes('sbatch --parsable')), 'sbatch commands in README.md').text;
  expectTasks(join(slurm('slurm-readme', { 'convert.sbatch': convert }, submit), 'final'));

  const pb = blocks(pipelineDoc).filter((b) => b.lang === 'bash');
  const pconvert = one(pb.filter((b) => b.text.includes('# convert.sbatch')), 'convert.sbatch in docs/pipeline.md').text;
  const pmerge = one(pb.filter((b) => b.text.includes('# merge.sbatch')), 'merge.sbatch in docs/pipeline.md').text;
  const psubmit = one(pb.filter((b) => b.text.includes('sbatch --parsable')), 'sbatch commands in docs/pipeline.md').text;
  expectTasks(join(slurm('slurm-pipeline', { 'convert.sbatch': pconvert, 'merge.sbatch': pmerge }, psubmit), 'final/niv2'));
  console.log('the README\'s Kubernetes and Slurm examples ran as written in', image);
} finally {
  if (ctr) spawnSync('buildah', ['rm', ctr], { stdio: 'ignore' });
  if (!args.includes('--keep')) rmSync(tmp, { recursive: true, force: true });
  else console.log(`kept ${tmp}`);
}

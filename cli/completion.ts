// Shell completion scripts (`flotilla completion bash|zsh|fish`): commands, kinds, flags, and the
// names of objects (asked of the server with `flotilla get KIND -o name`, quietly).

const COMMANDS = [
  'apply',
  'get',
  'describe',
  'delete',
  'logs',
  'events',
  'top',
  'scale',
  'rollout',
  'cordon',
  'uncordon',
  'drain',
  'label',
  'taint',
  'node',
  'token',
  'api-token',
  'keys',
  'login',
  'config',
  'completion',
  'server',
  'agent',
  'version',
];
const KINDS = ['nodes', 'deployments', 'daemonsets', 'pods', 'events', 'secrets', 'configmaps', 'services', 'endpoints', 'pvc'];
const FLAGS = [
  '--namespace',
  '--all-namespaces',
  '--output',
  '--selector',
  '--watch',
  '--filename',
  '--context',
  '--server',
  '--token',
  '--wait',
  '--timeout',
  '--dry-run',
  '--follow',
  '--tail',
  '--since',
  '--container',
];

export function completionScript(shell: 'bash' | 'zsh' | 'fish'): string {
  if (shell === 'fish') {
    const lines = [
      '# flotilla completion for fish: flotilla completion fish > ~/.config/fish/completions/flotilla.fish',
      `complete -c flotilla -f -n '__fish_use_subcommand' -a '${COMMANDS.join(' ')}'`,
      `complete -c flotilla -f -n '__fish_seen_subcommand_from get describe delete' -a '${KINDS.join(' ')}'`,
      "complete -c flotilla -f -n '__fish_seen_subcommand_from rollout' -a 'status history undo restart pause resume promote'",
      "complete -c flotilla -f -n '__fish_seen_subcommand_from config' -a 'get-contexts current-context use-context delete-context view'",
      "complete -c flotilla -f -n '__fish_seen_subcommand_from use-context delete-context' -a '(flotilla config get-contexts -o name 2>/dev/null)'",
      "complete -c flotilla -f -n '__fish_seen_subcommand_from logs' -a '(flotilla get pods -o name 2>/dev/null | string replace pod/ \"\")'",
      "complete -c flotilla -f -n '__fish_seen_subcommand_from completion' -a 'bash zsh fish'",
      "complete -c flotilla -s o -l output -x -a 'table wide json yaml name'",
      "complete -c flotilla -s n -l namespace -x -a '(flotilla get namespaces -o name 2>/dev/null)'",
      'complete -c flotilla -s A -l all-namespaces',
      'complete -c flotilla -s l -l selector -x',
      'complete -c flotilla -s w -l watch',
      'complete -c flotilla -s f -l filename -r',
      "complete -c flotilla -l context -x -a '(flotilla config get-contexts -o name 2>/dev/null)'",
    ];
    return `${lines.join('\n')}\n`;
  }
  const bash = `# flotilla completion for bash: source <(flotilla completion bash)
_flotilla() {
  local cur prev words cword
  COMPREPLY=()
  cur="\${COMP_WORDS[COMP_CWORD]}"
  prev="\${COMP_WORDS[COMP_CWORD-1]}"
  local cmd="\${COMP_WORDS[1]}"
  case "$prev" in
    -o|--output) COMPREPLY=( $(compgen -W "table wide json yaml name" -- "$cur") ); return ;;
    -f|--filename) COMPREPLY=( $(compgen -f -- "$cur") ); return ;;
    --context) COMPREPLY=( $(compgen -W "$(flotilla config get-contexts -o name 2>/dev/null)" -- "$cur") ); return ;;
  esac
  if [[ "$cur" == -* ]]; then COMPREPLY=( $(compgen -W "${FLAGS.join(' ')}" -- "$cur") ); return; fi
  if [[ $COMP_CWORD -eq 1 ]]; then COMPREPLY=( $(compgen -W "${COMMANDS.join(' ')}" -- "$cur") ); return; fi
  case "$cmd" in
    get|describe|delete)
      if [[ $COMP_CWORD -eq 2 ]]; then COMPREPLY=( $(compgen -W "${KINDS.join(' ')}" -- "$cur") )
      else COMPREPLY=( $(compgen -W "$(flotilla get "\${COMP_WORDS[2]}" -o name 2>/dev/null | sed 's|.*/||')" -- "$cur") ); fi ;;
    logs) COMPREPLY=( $(compgen -W "$(flotilla get pods -o name 2>/dev/null | sed 's|.*/||')" -- "$cur") ) ;;
    rollout) [[ $COMP_CWORD -eq 2 ]] && COMPREPLY=( $(compgen -W "status history undo restart pause resume promote" -- "$cur") ) ;;
    config) [[ $COMP_CWORD -eq 2 ]] && COMPREPLY=( $(compgen -W "get-contexts current-context use-context delete-context view" -- "$cur") ) \\
      || COMPREPLY=( $(compgen -W "$(flotilla config get-contexts -o name 2>/dev/null)" -- "$cur") ) ;;
    cordon|uncordon|drain) COMPREPLY=( $(compgen -W "$(flotilla get nodes -o name 2>/dev/null | sed 's|.*/||')" -- "$cur") ) ;;
    completion) COMPREPLY=( $(compgen -W "bash zsh fish" -- "$cur") ) ;;
  esac
}
complete -F _flotilla flotilla
`;
  if (shell === 'bash') return bash;
  return `#compdef flotilla
# flotilla completion for zsh: flotilla completion zsh > "\${fpath[1]}/_flotilla" (or: source <(flotilla completion zsh))
autoload -U +X bashcompinit && bashcompinit
${bash.split('\n').slice(1).join('\n')}`;
}

"""Shell completion scripts for bash and zsh, generated from the argument parser."""

from __future__ import annotations

import argparse


def _commands(parser: argparse.ArgumentParser) -> dict[str, list[str]]:
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {name: sorted(opt for action in p._actions for opt in action.option_strings)
            for name, p in sub.choices.items()}


def script(shell: str, parser: argparse.ArgumentParser) -> str:
    commands = _commands(parser)
    if shell == "bash":
        cases = "\n".join(f'        {name}) opts="{" ".join(opts)}" ;;' for name, opts in sorted(commands.items()))
        return f"""# bash completion for teamc: eval "$(teamc completion bash)"
_teamc() {{
    local cur=${{COMP_WORDS[COMP_CWORD]}} cmd=${{COMP_WORDS[1]}} opts
    if [ "$COMP_CWORD" -eq 1 ]; then
        COMPREPLY=($(compgen -W "{' '.join(sorted(commands))} --version --help" -- "$cur"))
        return
    fi
    case $cmd in
{cases}
    esac
    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "$opts" -- "$cur"))
    else
        COMPREPLY=($(compgen -f -X '!*@(.team|/)' -- "$cur") $(compgen -d -- "$cur"))
    fi
}}
complete -o filenames -F _teamc teamc
"""
    lines = "\n".join(f"        {name}) _arguments '*:file:_files -g \"*.team\"' {' '.join(repr(o) for o in opts)} ;;"
                      for name, opts in sorted(commands.items()))
    return f"""#compdef teamc
# zsh completion for teamc: teamc completion zsh > "${{fpath[1]}}/_teamc"
_teamc() {{
    if (( CURRENT == 2 )); then
        compadd {' '.join(sorted(commands))} --version --help
        return
    fi
    case $words[2] in
{lines}
    esac
}}
_teamc "$@"
"""

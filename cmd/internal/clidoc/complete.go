package clidoc

import (
	"fmt"
	"io"
	"sort"
	"strings"
)

// Bash writes a bash completion script: after the command words, the
// subcommands at that level, else the command's flags; a flag that takes
// a value completes file names.
func Bash(w io.Writer, prog string, cmds []*Command) error {
	fn := "_" + ident(prog)
	var b strings.Builder
	fmt.Fprintf(&b, "# bash completion for %s; generated from its commands, do not edit.\n", prog)
	fmt.Fprintf(&b, "%s() {\n", fn)
	b.WriteString("\tlocal cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]} path=\"\" i w\n")
	b.WriteString("\tfor ((i = 1; i < COMP_CWORD; i++)); do\n\t\tw=${COMP_WORDS[i]}\n\t\tcase \"$path $w\" in\n")
	walk(cmds, func(c *Command) {
		fmt.Fprintf(&b, "\t\t%q) path=\"$path $w\" ;;\n", " "+c.Name())
	})
	b.WriteString("\t\tesac\n\tdone\n")
	// A flag that takes a value: complete file names for it.
	b.WriteString("\tcase \"$path $prev\" in\n")
	walk(cmds, func(c *Command) {
		var vs []string
		for _, f := range c.Flags {
			if f.Value != "" {
				vs = append(vs, fmt.Sprintf("%q", " "+c.Name()+" --"+f.Name))
				if f.Short != "" {
					vs = append(vs, fmt.Sprintf("%q", " "+c.Name()+" -"+f.Short))
				}
			}
		}
		if len(vs) > 0 {
			fmt.Fprintf(&b, "\t%s) COMPREPLY=($(compgen -f -- \"$cur\")); return ;;\n", strings.Join(vs, "|"))
		}
	})
	b.WriteString("\tesac\n\tcase \"$path\" in\n")
	fmt.Fprintf(&b, "\t\"\") COMPREPLY=($(compgen -W %q -- \"$cur\")) ;;\n", strings.Join(append(names(cmds), "--help", "--version"), " "))
	walk(cmds, func(c *Command) {
		words := names(c.Subs)
		for _, f := range c.Flags {
			words = append(words, "--"+f.Name)
		}
		words = append(words, "--help")
		fmt.Fprintf(&b, "\t%q) COMPREPLY=($(compgen -W %q -- \"$cur\")) ;;\n", " "+c.Name(), strings.Join(words, " "))
	})
	b.WriteString("\tesac\n}\n")
	fmt.Fprintf(&b, "complete -F %s %s\n", fn, prog)
	_, err := io.WriteString(w, b.String())
	return err
}

// Zsh writes a zsh completion function (#compdef) with the same tree,
// each subcommand and flag with its description.
func Zsh(w io.Writer, prog string, cmds []*Command) error {
	var b strings.Builder
	fmt.Fprintf(&b, "#compdef %s\n# zsh completion for %s; generated from its commands, do not edit.\n\n", prog, prog)
	fn := "_" + ident(prog)
	fmt.Fprintf(&b, "%s() {\n\tlocal -a words_\n\tlocal path_=\"\" i\n", fn)
	b.WriteString("\tfor ((i = 2; i < CURRENT; i++)); do\n\t\tcase \"$path_ ${words[i]}\" in\n")
	walk(cmds, func(c *Command) {
		fmt.Fprintf(&b, "\t\t%s) path_=\"$path_ ${words[i]}\" ;;\n", zq(" "+c.Name()))
	})
	b.WriteString("\t\tesac\n\tdone\n\tcase \"$path_\" in\n")
	b.WriteString("\t\"\")\n\t\tlocal -a cmds=(\n")
	for _, c := range cmds {
		fmt.Fprintf(&b, "\t\t\t%s\n", zq(c.Path[len(c.Path)-1]+":"+c.Summary))
	}
	b.WriteString("\t\t)\n\t\t_describe command cmds ;;\n")
	walk(cmds, func(c *Command) {
		fmt.Fprintf(&b, "\t%s)\n", zq(" "+c.Name()))
		if len(c.Subs) > 0 {
			b.WriteString("\t\tlocal -a cmds=(\n")
			for _, s := range c.Subs {
				fmt.Fprintf(&b, "\t\t\t%s\n", zq(s.Path[len(s.Path)-1]+":"+s.Summary))
			}
			b.WriteString("\t\t)\n\t\t_describe command cmds ;;\n")
			return
		}
		b.WriteString("\t\t_arguments")
		for _, f := range c.Flags {
			spec := "--" + f.Name
			if f.Short != "" {
				spec = "{-" + f.Short + ",--" + f.Name + "}"
			}
			desc := "[" + strings.NewReplacer("[", "(", "]", ")", ":", " ").Replace(f.Usage) + "]"
			if f.Value != "" {
				desc += ":" + f.Value + ":_files"
			}
			if f.Short != "" {
				fmt.Fprintf(&b, " \\\n\t\t\t%s%s", spec, zq(desc))
			} else {
				fmt.Fprintf(&b, " \\\n\t\t\t%s", zq(spec+desc))
			}
		}
		b.WriteString(" \\\n\t\t\t'*:file:_files' ;;\n")
	})
	b.WriteString("\tesac\n}\n\n")
	fmt.Fprintf(&b, "%s \"$@\"\n", fn)
	_, err := io.WriteString(w, b.String())
	return err
}

// Fish writes fish completions: subcommands where their parent path was
// typed, flags with their descriptions.
func Fish(w io.Writer, prog string, cmds []*Command) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# fish completion for %s; generated from its commands, do not edit.\n", prog)
	fn := "__" + ident(prog) + "_path_is"
	// The function says whether the words typed so far (subcommands
	// only, flags skipped) are exactly the path given.
	fmt.Fprintf(&b, "function %s\n\tset -l words (commandline -opc)[2..-1]\n\tset -l path\n\tfor w in $words\n\t\tstring match -q -- '-*' $w; and continue\n\t\tset path $path $w\n\tend\n\ttest \"$path\" = \"$argv\"\nend\n", fn)
	fmt.Fprintf(&b, "complete -c %s -f\n", prog)
	for _, c := range cmds {
		fmt.Fprintf(&b, "complete -c %s -n '%s' -a %s -d %s\n", prog, fn, fq(c.Path[0]), fq(c.Summary))
	}
	walk(cmds, func(c *Command) {
		cond := fn + " " + c.Name()
		for _, s := range c.Subs {
			fmt.Fprintf(&b, "complete -c %s -n %s -a %s -d %s\n", prog, fq(cond), fq(s.Path[len(s.Path)-1]), fq(s.Summary))
		}
		for _, f := range c.Flags {
			line := fmt.Sprintf("complete -c %s -n %s -l %s", prog, fq(cond), f.Name)
			if f.Short != "" {
				line += " -s " + f.Short
			}
			if f.Value != "" {
				line += " -r -F"
			}
			b.WriteString(line + " -d " + fq(f.Usage) + "\n")
		}
	})
	_, err := io.WriteString(w, b.String())
	return err
}

func names(cmds []*Command) []string {
	var out []string
	for _, c := range cmds {
		out = append(out, c.Path[len(c.Path)-1])
	}
	sort.Strings(out)
	return out
}

// ident makes a shell function name of a program name.
func ident(prog string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			return r
		}
		return '_'
	}, prog)
}

// zq and fq quote a word for zsh and fish in single quotes.
func zq(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
func fq(s string) string {
	return "'" + strings.ReplaceAll(strings.ReplaceAll(s, `\`, `\\`), "'", `\'`) + "'"
}

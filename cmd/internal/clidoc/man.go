package clidoc

import (
	"fmt"
	"io"
	"strings"
)

// Page is what the manual page says besides the commands.
type Page struct {
	Prog, Version string
	Date          string // e.g. "2026-12-04", the build's, for reproducible pages
	Summary       string // the NAME line after the dash
	Description   string // paragraphs separated by blank lines
	SeeAlso       []string
}

// Man writes a manual page in section 1 (man(7) macros): the synopsis of
// every command, then each command with its description and flags.
func Man(w io.Writer, p Page, cmds []*Command) error {
	var b strings.Builder
	fmt.Fprintf(&b, ".TH %s 1 %q %q \"User Commands\"\n", strings.ToUpper(p.Prog), p.Date, p.Prog+" "+p.Version)
	fmt.Fprintf(&b, ".SH NAME\n%s \\- %s\n", p.Prog, roff(p.Summary))
	b.WriteString(".SH SYNOPSIS\n")
	walk(cmds, func(c *Command) {
		if c.dispatcher() {
			return
		}
		fmt.Fprintf(&b, ".B %s %s\n", p.Prog, c.Name())
		if c.Args != "" {
			fmt.Fprintf(&b, "%s\n", roff(c.Args))
		}
		b.WriteString(".br\n")
	})
	b.WriteString(".SH DESCRIPTION\n")
	paragraphs(&b, p.Description)
	b.WriteString(".SH COMMANDS\n")
	walk(cmds, func(c *Command) {
		fmt.Fprintf(&b, ".SS \"%s %s\"\n", p.Prog, c.Name())
		if c.Summary != "" {
			fmt.Fprintf(&b, "%s.\n.PP\n", roff(strings.TrimSuffix(c.Summary, ".")))
		}
		if !c.dispatcher() {
			literal(&b, c.About)
		}
		for _, f := range c.Flags {
			b.WriteString(".TP\n")
			name := "\\-\\-" + roff(f.Name)
			if f.Short != "" {
				name = "\\-" + roff(f.Short) + ", " + name
			}
			if f.Value != "" {
				name += " \\fI" + roff(f.Value) + "\\fR"
			}
			fmt.Fprintf(&b, ".B %s\n", name)
			u := roff(f.Usage)
			if f.Default != "" {
				u += " (default " + roff(f.Default) + ")"
			}
			b.WriteString(u + "\n")
		}
	})
	if len(p.SeeAlso) > 0 {
		fmt.Fprintf(&b, ".SH SEE ALSO\n%s\n", roff(strings.Join(p.SeeAlso, ", ")))
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// paragraphs writes text as .PP paragraphs.
func paragraphs(b *strings.Builder, text string) {
	for i, para := range strings.Split(strings.TrimSpace(text), "\n\n") {
		if i > 0 {
			b.WriteString(".PP\n")
		}
		b.WriteString(roff(strings.Join(strings.Fields(para), " ")) + "\n")
	}
}

// literal writes a command's --help description: prose as filled
// paragraphs, indented blocks (examples) as unfilled lines.
func literal(b *strings.Builder, text string) {
	text = strings.TrimSpace(text)
	if text == "" {
		return
	}
	for i, para := range strings.Split(text, "\n\n") {
		if i > 0 {
			b.WriteString(".PP\n")
		}
		lines := strings.Split(para, "\n")
		var prose []string
		for _, l := range lines {
			if strings.HasPrefix(l, "  ") {
				if len(prose) > 0 {
					b.WriteString(roff(strings.Join(prose, " ")) + "\n")
					prose = nil
				}
				b.WriteString(".nf\n.RS 2\n" + roff(strings.TrimSpace(l)) + "\n.RE\n.fi\n")
				continue
			}
			prose = append(prose, strings.TrimSpace(l))
		}
		if len(prose) > 0 {
			b.WriteString(roff(strings.Join(prose, " ")) + "\n")
		}
	}
}

// roff escapes text for a roff line: backslashes and hyphens (which roff
// would set as typographic hyphens, breaking copied commands), characters
// beyond ASCII (as \[uXXXX], which every troff reads whatever the
// locale), and a leading dot or quote that would read as a request.
func roff(s string) string {
	s = strings.ReplaceAll(s, `\`, `\e`)
	s = strings.ReplaceAll(s, "-", `\-`)
	s = strings.Map(func(r rune) rune {
		if r == '\t' {
			return ' '
		}
		return r
	}, s)
	var b strings.Builder
	for _, r := range s {
		if r > 0x7e {
			fmt.Fprintf(&b, `\[u%04X]`, r)
			continue
		}
		b.WriteRune(r)
	}
	s = b.String()
	if strings.HasPrefix(s, ".") || strings.HasPrefix(s, "'") {
		s = `\&` + s
	}
	return s
}

package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
)

// manPath is the committed man page; `make man` rewrites it from manualPages.
const manPath = "gwlock.1"

// renderMan renders the manual as a man(7) page. It lives in a test file so
// the binary carries only the terminal renderer.
func renderMan() []byte {
	var b bytes.Buffer
	b.WriteString(".\\\" Generated from manual.go by `make man`; do not edit.\n")
	b.WriteString(".TH GWLOCK 1 \"\" gwlock \"User Commands\"\n")
	b.WriteString(".SH NAME\ngwlock \\- one gateway process per configuration: a crash\\-safe lock and a supervisor\n")
	b.WriteString(".SH SYNOPSIS\n.nf\n")
	for _, p := range manualPages() {
		b.WriteString(manEscape(p.synopsis) + "\n")
	}
	b.WriteString("gwlock version\ngwlock help [COMMAND]\n.fi\n")
	b.WriteString(".SH DESCRIPTION\n" + manEscape("gwlock makes sure exactly one gateway process runs per configuration on a host, starts and supervises it, and says in one line of telemetry on stderr what it decided and why. Each command is described below; gwlock help COMMAND prints the same text.") + "\n")
	for _, p := range manualPages() {
		b.WriteString(".SH \"GWLOCK " + strings.ToUpper(p.name) + "\"\n")
		b.WriteString(manEscape(p.synopsis+": "+p.summary) + "\n")
		for _, s := range p.sections {
			b.WriteString(".SS \"" + s.title + "\"\n")
			for _, para := range s.paras {
				b.WriteString(".PP\n" + manEscape(para) + "\n")
			}
			for _, it := range s.items {
				b.WriteString(".TP\n.B " + manEscape(it.term) + "\n" + manEscape(it.text) + "\n")
			}
			if len(s.code) > 0 {
				b.WriteString(".PP\n.nf\n.RS 4\n")
				for _, line := range s.code {
					b.WriteString(manEscape(line) + "\n")
				}
				b.WriteString(".RE\n.fi\n")
			}
		}
	}
	b.WriteString(".SH \"SEE ALSO\"\nflock(1), README.md in the gwlock sources\n")
	return b.Bytes()
}

// manEscape makes text safe for roff: backslashes and minus signs escaped,
// and no line may start with a control character.
func manEscape(s string) string {
	s = strings.NewReplacer(`\`, `\e`, "-", `\-`).Replace(s)
	if strings.HasPrefix(s, ".") || strings.HasPrefix(s, "'") {
		s = `\&` + s
	}
	return s
}

// TestManPage fails when gwlock.1 is not what `make man` would write from
// manual.go; GWLOCK_UPDATE_MAN=1 (which `make man` sets) rewrites it instead.
func TestManPage(t *testing.T) {
	if runtime.GOOS == "windows" {
		// make wine-test runs the Windows test binary outside the source
		// tree; the page is the same text on every OS, checked on Linux.
		t.Skip("the committed gwlock.1 is checked by the native test run")
	}
	want := renderMan()
	if os.Getenv("GWLOCK_UPDATE_MAN") == "1" {
		if err := os.WriteFile(manPath, want, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	got, err := os.ReadFile(manPath)
	if err != nil {
		t.Fatalf("%v (hint: make man)", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s is out of date with manual.go (hint: make man)", manPath)
	}
}

// TestHelpPages: gwlock help CMD prints CMD's page, and every flag the page
// documents is one the command accepts.
func TestHelpPages(t *testing.T) {
	for _, cmd := range []string{"run", "status", "probe", "unlock"} {
		var stdout, stderr bytes.Buffer
		if code := cli([]string{"help", cmd}, &stdout, &stderr); code != exitOK {
			t.Fatalf("help %s: exit %d, want %d; %s", cmd, code, exitOK, stderr.String())
		}
		page := stdout.String()
		if !strings.Contains(page, "usage: gwlock "+cmd) || !strings.Contains(page, "EXIT STATUS") {
			t.Fatalf("help %s printed no reference page:\n%s", cmd, page)
		}
		for _, p := range manualPages() {
			if p.name != cmd {
				continue
			}
			for _, s := range p.sections {
				for _, it := range s.items {
					for _, name := range strings.Split(it.term, ", ") {
						if !strings.HasPrefix(name, "-") {
							continue
						}
						flagName, _, _ := strings.Cut(name, " ")
						args := []string{flagName}
						if _, arg, hasArg := strings.Cut(name, " "); hasArg {
							args = []string{flagName + "=" + sampleFlagValue(arg)}
						}
						if _, err := parseFlags(cmd, append(args, "--port", "1")); err != nil && strings.Contains(err.Error(), "flag provided but not defined") {
							t.Errorf("help %s documents %s, which %s does not accept: %v", cmd, name, cmd, err)
						}
					}
				}
			}
		}
	}
	var stdout, stderr bytes.Buffer
	if code := cli([]string{"run", "--config", "x", "--help"}, &stdout, &stderr); code != exitOK || !strings.Contains(stdout.String(), "usage: gwlock run") {
		t.Fatalf("run --help: exit %d, want %d and run's page; stderr %s", code, exitOK, stderr.String())
	}
	if helpRequested([]string{"--lock", "l", "--", "gateway", "--help"}) {
		t.Fatal("helpRequested(--lock l -- gateway --help) = true, want false: the gateway's --help is not ours")
	}
	stdout.Reset()
	if code := cli([]string{"help", "nonsense"}, &stdout, &stderr); code != exitUsage {
		t.Fatalf("help nonsense: exit %d, want %d", code, exitUsage)
	}
}

// sampleFlagValue is a valid value for a flag documented with argument arg.
func sampleFlagValue(arg string) string {
	switch {
	case arg == "D":
		return "1s"
	case arg == "N":
		return "1"
	case strings.Contains(arg, "|"):
		v, _, _ := strings.Cut(arg, "|")
		return v
	case arg == "F":
		return "text"
	}
	return "x"
}

// documentedFlags maps each flag name a page documents (without dashes) to
// the environment variable its text names, "" for none.
func documentedFlags(p manualPage) map[string]string {
	flags := map[string]string{}
	for _, s := range p.sections {
		if s.title != "OPTIONS" && s.title != "ETCD BACKEND" {
			continue
		}
		for _, it := range s.items {
			_, env := flagBrief(it.text)
			for _, name := range strings.Split(it.term, ", ") {
				name, _, _ = strings.Cut(name, " ")
				flags[strings.TrimLeft(name, "-")] = env
			}
		}
	}
	return flags
}

// TestFlagsMatchManual: the flags each command accepts are exactly the ones
// its page documents, and each names the environment variable it reads, so
// neither -h nor help CMD can miss or invent a flag.
func TestFlagsMatchManual(t *testing.T) {
	for _, p := range manualPages() {
		doc := documentedFlags(p)
		set := (&config{}).flags(p.name)
		accepted := map[string]bool{}
		set.VisitAll(func(f *flag.Flag) {
			accepted[f.Name] = true
			env, ok := doc[f.Name]
			if !ok {
				t.Errorf("%s accepts --%s, which help %s does not document", p.name, f.Name, p.name)
				return
			}
			if env != set.envOf[f.Name] {
				t.Errorf("help %s says --%s reads %q; the parser reads %q", p.name, f.Name, env, set.envOf[f.Name])
			}
		})
		for name := range doc {
			if !accepted[name] {
				t.Errorf("help %s documents --%s, which %s does not accept", p.name, name, p.name)
			}
		}
	}
}

// TestUsageIsManualBrief: every flag line of gwlock -h is the first sentence
// of that flag's text in gwlock help CMD, so the two cannot disagree (they
// once did about --subreaper).
func TestUsageIsManualBrief(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := cli([]string{"-h"}, &stdout, &stderr); code != exitOK {
		t.Fatalf("gwlock -h: exit %d, want %d", code, exitOK)
	}
	usage := strings.Join(strings.Fields(stdout.String()), " ")
	for _, p := range manualPages() {
		var page bytes.Buffer
		writeManualText(&page, p)
		pageText := strings.Join(strings.Fields(page.String()), " ")
		for _, s := range p.sections {
			for _, it := range s.items {
				if !strings.HasPrefix(it.term, "-") {
					continue
				}
				brief, _ := flagBrief(it.text)
				if !strings.HasPrefix(it.text, brief) || !strings.Contains(pageText, it.term+" "+brief) {
					t.Errorf("help %s: %s does not start with its brief %q", p.name, it.term, brief)
				}
				if !strings.Contains(usage, it.term+" "+brief) {
					t.Errorf("gwlock -h does not give %s as %q", it.term, brief)
				}
			}
		}
	}
	if !strings.Contains(usage, "--subreaper Fail if run cannot become a subreaper.") {
		t.Errorf("gwlock -h describes --subreaper otherwise than help run:\n%s", stdout.String())
	}
	for _, line := range strings.Split(stdout.String(), "\n") {
		if len(line) > 78 {
			t.Errorf("gwlock -h line over 78 columns: %q", line)
		}
	}
}

// docCommand is one gwlock command line found in the documentation.
type docCommand struct {
	where string   // file:line
	args  []string // after "gwlock"
	env   []string // KEY=VALUE set by the line or its block (systemd Environment=)
}

// docCodeBlocks returns the code blocks of a Markdown file (fenced, or
// indented by four spaces), each as its lines with their line numbers.
func docCodeBlocks(text string) [][]numberedLine {
	var blocks [][]numberedLine
	var cur []numberedLine
	fenced := false
	flush := func() {
		if len(cur) > 0 {
			blocks = append(blocks, cur)
		}
		cur = nil
	}
	output := false // a ```text block is output, not commands
	for i, line := range strings.Split(text, "\n") {
		switch {
		case strings.HasPrefix(line, "```"):
			flush()
			fenced, output = !fenced, line == "```text"
		case fenced && output:
		case fenced:
			cur = append(cur, numberedLine{i + 1, line})
		case strings.HasPrefix(line, "    "):
			cur = append(cur, numberedLine{i + 1, line[4:]})
		case strings.TrimSpace(line) == "" && len(cur) > 0:
			cur = append(cur, numberedLine{i + 1, ""})
		default:
			flush()
		}
	}
	flush()
	return blocks
}

type numberedLine struct {
	n    int
	text string
}

var (
	promptRE = regexp.MustCompile(`^\S*\$ `)
	plistRE  = regexp.MustCompile(`<string>([^<]*)</string>`)
	// redirectRE is a shell redirection word: >file, 2>file, <file.
	redirectRE = regexp.MustCompile(`^[0-9]*[<>]`)
)

// docCommands finds every gwlock command line in a file's code blocks: shell
// lines (continuations joined, a prompt stripped), systemd ExecStart= lines
// with the block's Environment=, a launchd ProgramArguments array, and a
// Dockerfile's ENTRYPOINT and CMD.
func docCommands(t *testing.T, file string) []docCommand {
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var found []docCommand
	for _, block := range docCodeBlocks(string(b)) {
		env, argvs := blockArgvs(t, file, block)
		if len(argvs) > 0 {
			for _, argv := range argvs {
				if path.Base(argv[0]) == "gwlock" {
					found = append(found, docCommand{fmt.Sprintf("%s:%d", file, block[0].n), argv[1:], env})
				}
			}
			continue
		}
		for _, c := range shellLines(file, block) {
			c.env = append(c.env, env...)
			found = append(found, c)
		}
	}
	return found
}

// blockArgvs is a block's systemd Environment= assignments, and the argv of
// its launchd ProgramArguments and of its Dockerfile ENTRYPOINT and CMD.
func blockArgvs(t *testing.T, file string, block []numberedLine) (env []string, argvs [][]string) {
	var plist, docker []string
	for _, l := range block {
		if v, ok := strings.CutPrefix(l.text, "Environment="); ok {
			env = append(env, shellWords(v)...)
		}
		for _, m := range plistRE.FindAllStringSubmatch(l.text, -1) {
			plist = append(plist, m[1])
		}
		for _, prefix := range []string{"ENTRYPOINT ", "CMD "} {
			if v, ok := strings.CutPrefix(l.text, prefix); ok {
				var words []string
				if err := json.Unmarshal([]byte(v), &words); err != nil {
					t.Fatalf("%s:%d: %s is not in exec (JSON) form: %v", file, l.n, prefix, err)
				}
				docker = append(docker, words...)
			}
		}
	}
	for _, argv := range [][]string{plist, docker} {
		if len(argv) > 0 {
			argvs = append(argvs, argv)
		}
	}
	return env, argvs
}

// shellLines is the gwlock commands of a block of shell lines. In a block
// with prompts, only the prompted lines are commands; the others are their
// output.
func shellLines(file string, block []numberedLine) []docCommand {
	prompted := false
	for _, l := range block {
		prompted = prompted || promptRE.MatchString(l.text)
	}
	var found []docCommand
	for i := 0; i < len(block); i++ {
		start, line := block[i].n, block[i].text
		if prompted && !promptRE.MatchString(line) {
			continue
		}
		for strings.HasSuffix(line, `\`) && i+1 < len(block) {
			i++
			line = strings.TrimSuffix(line, `\`) + " " + block[i].text
		}
		line = promptRE.ReplaceAllString(strings.TrimPrefix(line, "ExecStart="), "")
		for _, cmd := range shellCommands(line) {
			if c, ok := gwlockCommand(cmd); ok {
				c.where = fmt.Sprintf("%s:%d", file, start)
				found = append(found, c)
			}
		}
	}
	return found
}

// gwlockCommand is words as a gwlock invocation, with leading KEY=VALUE
// assignments as its environment.
func gwlockCommand(words []string) (docCommand, bool) {
	var c docCommand
	for i, w := range words {
		if path.Base(w) == "gwlock" {
			c.args = words[i+1:]
			return c, true
		}
		if !strings.Contains(w, "=") || strings.HasPrefix(w, "-") {
			return c, false
		}
		c.env = append(c.env, w)
	}
	return c, false
}

// shellCommands splits a shell line into simple commands at unquoted ;, &
// and |, each as its words; a word starting with # ends the line, and
// redirections are dropped.
func shellCommands(line string) [][]string {
	var cmds [][]string
	var words []string
	var word strings.Builder
	inWord, quote := false, rune(0)
	endWord := func() {
		if inWord {
			if w := word.String(); !redirectRE.MatchString(w) {
				words = append(words, w)
			}
		}
		word.Reset()
		inWord = false
	}
	endCmd := func() {
		endWord()
		if len(words) > 0 {
			cmds = append(cmds, words)
		}
		words = nil
	}
	for _, r := range line {
		switch {
		case quote != 0 && r == quote:
			quote = 0
		case quote != 0:
			word.WriteRune(r)
		case r == '\'' || r == '"':
			quote, inWord = r, true
		case r == ' ' || r == '\t':
			endWord()
		case r == ';' || r == '&' || r == '|':
			endCmd()
		case r == '#' && !inWord:
			endCmd()
			return cmds
		default:
			word.WriteRune(r)
			inWord = true
		}
	}
	endCmd()
	return cmds
}

// shellWords splits systemd-style KEY=VALUE assignments.
func shellWords(s string) []string {
	cmds := shellCommands(s)
	if len(cmds) == 0 {
		return nil
	}
	return cmds[0]
}

// TestReadmeCommandLines runs every gwlock command line of README.md and
// docs/ through the real command line parser: a recipe the binary would
// refuse (exit 2) fails here, not in an operator's unit.
func TestReadmeCommandLines(t *testing.T) {
	files, _ := filepath.Glob("docs/*.md")
	files = append([]string{"README.md"}, files...)
	total := 0
	for _, file := range files {
		cmds := docCommands(t, file)
		if file == "README.md" && len(cmds) < 10 {
			t.Fatalf("found %d gwlock command lines in README.md, want at least 10: is the extraction broken?", len(cmds))
		}
		total += len(cmds)
		for _, c := range cmds {
			checkDocCommand(t, c)
		}
	}
	t.Logf("%d command lines parsed", total)
}

// checkDocCommand parses one documented command line with its environment.
func checkDocCommand(t *testing.T, c docCommand) {
	t.Helper()
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "GWLOCK_") {
			k, _, _ := strings.Cut(kv, "=")
			t.Setenv(k, "")
		}
	}
	for _, kv := range c.env {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	if len(c.args) == 0 {
		t.Errorf("%s: gwlock with no command", c.where)
		return
	}
	switch cmd := c.args[0]; cmd {
	case "version":
	case "help", "-h", "--help":
		var stdout, stderr bytes.Buffer
		if code := cli(c.args, &stdout, &stderr); code != exitOK {
			t.Errorf("%s: gwlock %s: exit %d: %s", c.where, strings.Join(c.args, " "), code, stderr.String())
		}
	case "run", "status", "probe", "unlock":
		if _, err := parseFlags(cmd, c.args[1:]); err != nil {
			t.Errorf("%s: gwlock %s (env %q): exit %d: %v", c.where, strings.Join(c.args, " "), c.env, exitCode(err), err)
		}
	default:
		t.Errorf("%s: gwlock %s: unknown command", c.where, strings.Join(c.args, " "))
	}
}

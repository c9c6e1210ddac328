//go:build linux

package main

import (
	"fmt"
	"gwlock/internal/etcdtest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// indentedBlock is the first indented block of file after the text after
// whose first line starts with first (indent stripped), as its lines
// without the indent.
func indentedBlock(t *testing.T, file, after, first string) []string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	_, text, ok := strings.Cut(string(b), after)
	if !ok {
		t.Fatalf("%s does not say %q", file, after)
	}
	var block []string
	for _, line := range strings.Split(text, "\n") {
		in := strings.HasPrefix(line, "    ")
		switch {
		case in && (len(block) > 0 || strings.HasPrefix(line[4:], first)):
			block = append(block, line[4:])
		case len(block) > 0:
			return block
		}
	}
	if len(block) == 0 {
		t.Fatalf("%s has no indented block starting %q", file, first)
	}
	return block
}

// recipeHost is what the recipes' paths and hosts stand for in the test.
type recipeHost struct {
	subst []string // old, new pairs, in order
	dir   string
}

func newRecipeHost(t *testing.T, c *etcdtest.Cluster, pki etcdtest.PKI) *recipeHost {
	dir := tempDir(t)
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	h := &recipeHost{dir: dir}
	for i, ep := range c.Endpoints() {
		h.subst = append(h.subst, fmt.Sprintf("https://etcd%d:2379", i+1), ep)
	}
	h.subst = append(h.subst, "/etc/gwlock/ca.pem", pki.CA, "/etc/gwlock/client.pem", pki.ClientCert,
		"/etc/gwlock/client-key.pem", pki.ClientKey, "/etc/gwlock/etcd-password", write("etcd-password", "gateway-secret"),
		"/etc/etcd/root-password", write("root-password", "root-secret"))
	return h
}

func (h *recipeHost) apply(s string) string {
	return strings.NewReplacer(h.subst...).Replace(s)
}

// unitCommand is the README's unit as one host runs it: its Environment=
// lines and its ExecStart, with the paths of this test and the fake gateway.
func (h *recipeHost) unitCommand(t *testing.T, unit []string, hostDir, gwLog string) (env, args []string) {
	t.Helper()
	exec := ""
	for i := 0; i < len(unit); i++ {
		line := h.apply(unit[i])
		if kv, ok := strings.CutPrefix(line, "Environment="); ok {
			env = append(env, kv)
		}
		if cmd, ok := strings.CutPrefix(line, "ExecStart="); ok {
			for strings.HasSuffix(cmd, `\`) && i+1 < len(unit) {
				i++
				cmd = strings.TrimSuffix(cmd, `\`) + " " + strings.TrimSpace(h.apply(unit[i]))
			}
			exec = cmd
		}
	}
	fields := strings.Fields(exec)
	if len(fields) < 4 || fields[0] != "/usr/local/bin/gwlock" || fields[len(fields)-1] != "/usr/local/bin/gateway-server" {
		t.Fatalf("README unit's ExecStart = %q, want /usr/local/bin/gwlock ... -- /usr/local/bin/gateway-server", exec)
	}
	args = append(fields[1:len(fields)-1], testBinary(t), "helper:etcd-gateway", "-log", gwLog, "-marker", filepath.Join(filepath.Dir(gwLog), "marker"))
	for i := range args {
		if args[i] == "--port" && i+1 < len(args) {
			args[i+1] = strconv.Itoa(freePort(t)) // the unit's port may be taken on this machine
		}
	}
	return append(env, "GWLOCK_LOCK_DIR="+hostDir), args
}

// TestEtcdRecipe: the mTLS + auth setup of docs/etcd.md and the README's
// systemd unit, run as written (paths and hosts replaced) against a
// three-member cluster with --client-cert-auth: two hosts run the unit,
// one holds, the other takes over when the first stops. A client
// certificate with a CommonName is refused (by 3.4.23, 3.5 and 3.6 alike)
// with the server's words and the hint to drop it.
func TestEtcdRecipe(t *testing.T) {
	pki := etcdtest.MakePKI(t, tempDir(t))
	c := etcdtest.Start(t, 3, "https", "--cert-file", pki.ServerCert, "--key-file", pki.ServerKey,
		"--client-cert-auth", "--trusted-ca-file", pki.CA)
	h := newRecipeHost(t, c, pki)
	setup := h.apply(strings.Join(indentedBlock(t, "docs/etcd.md", "**Mutual TLS with auth, step by step.**", "export ETCDCTL_API=3"), "\n"))
	runSetup(t, setup)
	unit := indentedBlock(t, "README.md", "**etcd: one gateway across hosts.**", "[Service]")
	if docs := indentedBlock(t, "docs/etcd.md", "**systemd, active and standby.**", "# /etc/systemd/system/gateway.service"); strings.Join(docs[1:], "\n") != strings.Join(unit, "\n") {
		t.Fatalf("docs/etcd.md's unit differs from the README's:\n%s\nvs\n%s", strings.Join(docs[1:], "\n"), strings.Join(unit, "\n"))
	}
	gwLog := filepath.Join(h.dir, "gateway.log")
	gateways := &etcdRunner{t: t, dir: h.dir}
	var hosts []*background
	for _, name := range []string{"hostA", "hostB"} {
		env, args := h.unitCommand(t, unit, filepath.Join(h.dir, name), gwLog)
		if err := os.Mkdir(filepath.Join(h.dir, name), 0o700); err != nil {
			t.Fatal(err)
		}
		hosts = append(hosts, startHelper(t, "gwlock", env, args...))
		if name == "hostA" {
			gateways.waitGateway(t, hosts[0].waitEvent(t, "acquire-success"))
		}
	}
	hosts[1].waitEvent(t, "acquire-contention")
	hosts[0].signal(t, syscall.SIGTERM)
	waitExit(t, hosts[0], 0)
	gateways.waitGateway(t, hosts[1].waitEvent(t, "acquire-success"))
	hosts[1].signal(t, syscall.SIGTERM)
	waitExit(t, hosts[1], 0)
	if runs := checkGatewayLog(t, h.dir); len(runs) != 2 {
		t.Fatalf("gateway runs = %v, want 2", runs)
	}
	commonNameRefused(t, h, unit, pki)
}

// runSetup runs the admin's block in bash, stopping at the first failure.
func runSetup(t *testing.T, script string) {
	t.Helper()
	cmd := exec.Command("bash", "-euo", "pipefail", "-c", script)
	cmd.Env = cleanEnv()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("docs/etcd.md's setup:\n%s\n%v\n%s", script, err, out)
	}
}

// commonNameRefused runs the unit once more with a client certificate that
// has a CommonName.
func commonNameRefused(t *testing.T, h *recipeHost, unit []string, pki etcdtest.PKI) {
	t.Helper()
	h.subst = append([]string{"/etc/gwlock/client.pem", pki.ClientCNCert, "/etc/gwlock/client-key.pem", pki.ClientCNKey}, h.subst...)
	env, args := h.unitCommand(t, unit, filepath.Join(h.dir, "hostA"), filepath.Join(h.dir, "cn.log"))
	args = append([]string{args[0], "--timeout", "0"}, args[1:]...)
	r := runGwlock(t, env, args...)
	if r.code != exitFailure || !strings.Contains(r.stderr, `server said "CommonName of client sending a request against gateway`) ||
		!strings.Contains(r.stderr, "hint: use a client certificate without a CommonName") {
		t.Fatalf("unit with a CommonName certificate on etcd %s: exit %d, stderr:\n%s\nwant exit %d, the server's words and the hint", etcdtest.Version(t), r.code, r.stderr, exitFailure)
	}
}

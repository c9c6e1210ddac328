package main

import (
	"path/filepath"
	"testing"
)

// TestStackedLocalWaitSaysWhom: under --backend etcd the local file lock
// guards the remote one and keeps its acquire-* lines to itself, but a wait
// on it is said: with no --timeout that wait has no end, and a silent one
// looks like a hang. The endpoint is never reached: the local lock comes
// first.
func TestStackedLocalWaitSaysWhom(t *testing.T) {
	dir := lockDir(t)
	local := filepath.Join(dir, derivedLockName("lock-name:stacked"))
	h := startHelper(t, "holder", nil, "-lock", local, "-payload", `{"pid":1,"flock":true}`)
	waitStdout(t, h, "held")
	r := runGwlock(t, nil, "run", "--backend", "etcd", "--etcd-endpoints", "http://127.0.0.1:9",
		"--lock-name", "stacked", "--lock-dir", dir, "--timeout", "300ms", "--", testBinary(t), "helper:gateway")
	if r.code != exitBusy {
		t.Fatalf("exit = %d, want %d; stderr:\n%s", r.code, exitBusy, r.stderr)
	}
	ev := mustEvent(t, r.events(), "acquire-contention", "lock")
	if ev["lock"] != local {
		t.Errorf("acquire-contention lock = %s, want the local lock %s", ev["lock"], local)
	}
	if n := len(findEvents(r.events(), "acquire-start")); n != 0 {
		t.Errorf("%d acquire-start lines, want none: the local lock's stay quiet, and the remote one never began", n)
	}
}

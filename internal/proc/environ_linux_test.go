package proc

import (
	"os"
	"os/exec"
	"strconv"
	"testing"
)

// TestEnvironOfReapedProcess: a process reaped while its environment is
// being read is gone, not unreadable. The error is made as the scan meets
// it: the task directory opened while the process lives, read after it was
// reaped (readdirent: ENOENT). Fails when that error is wrapped before it
// is judged: "read /proc/N/environ: readdirent /proc/N/task: no such file
// or directory", a search that cannot say the token is nowhere.
func TestEnvironOfReapedProcess(t *testing.T) {
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	dir := "/proc/" + strconv.Itoa(cmd.Process.Pid)
	f, err := os.Open(dir + "/task")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	_, err = f.ReadDir(-1)
	if err == nil {
		t.Skip("this kernel lists a reaped process's tasks")
	}
	if got := (readFailure{"read", "environ", err}).at(dir); got != nil {
		t.Fatalf("a failed read of %v = %v, want nil: the process is gone", err, got)
	}
}

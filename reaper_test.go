//go:build linux || freebsd

package main

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"syscall"
	"testing"
	"time"
)

func init() { helpers["beside"] = helperBeside }

// TestReaperLeavesBesideAlone: a child gwlock starts beside the gateway is
// never taken for part of the gateway's tree, although the reaper (a
// subreaper, as PID 1 would be) reaps every child. Run in a helper process:
// making the test binary itself a subreaper would reap other tests' children.
func TestReaperLeavesBesideAlone(t *testing.T) {
	out, err := helperCmd(t, "beside").CombinedOutput()
	if err != nil {
		t.Fatalf("helper beside: %v\n%s", err, out)
	}
}

// besideWait bounds each wait for an exit in helperBeside.
var besideWait = 10 * time.Second * testScale

// helperBeside checks, as a subreaper with a gateway running: an extra child
// that exits comes back to its starter, not to the supervisor; a live one is
// not listed in the gateway's tree; and the gateway's end is reported as the
// tree's end while the extra child still lives.
func helperBeside([]string) int {
	if err := checkBeside(); err != nil {
		fmt.Fprintln(os.Stderr, "beside:", err)
		return 1
	}
	return 0
}

func checkBeside() error {
	tree, err := openGatewayTree(true)
	if err != nil {
		return err
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	env := cleanEnv()
	gateway, err := tree.start([]string{exe, "helper:gateway", "-sleep", "60s"}, env, 0, false, killSignal)
	if err != nil {
		return err
	}
	defer tree.kill(nil) // on failure: nothing left to hold the test's output open
	quick, quickExit, err := tree.startBeside([]string{exe, "helper:gateway", "-exit", "7"}, env)
	if err != nil {
		return err
	}
	if e, err := awaitExit(quickExit, tree.exits); err != nil || e.pid != quick || e.code != 7 {
		return fmt.Errorf("extra child %d: exit %+v, %v; want its code 7 handed back", quick, e, err)
	}
	sleeper, sleeperExit, err := tree.startBeside([]string{exe, "helper:gateway", "-sleep", "60s"}, env)
	if err != nil {
		return err
	}
	defer syscall.Kill(sleeper, syscall.SIGKILL)
	if kids := tree.children(); slices.Contains(kids, sleeper) || !slices.Contains(kids, gateway) {
		return fmt.Errorf("children() = %v, want the gateway %d and not the extra child %d", kids, gateway, sleeper)
	}
	tree.kill(nil)
	select {
	case e := <-tree.exits:
		if e.pid != gateway || !e.treeKnown || !e.treeEmpty {
			return fmt.Errorf("gateway's exit = %+v, want pid %d with the tree known empty (only the extra child lives)", e, gateway)
		}
	case <-time.After(besideWait):
		return errors.New("no exit reported for the gateway")
	}
	_ = syscall.Kill(sleeper, syscall.SIGKILL)
	if e, err := awaitExit(sleeperExit, tree.exits); err != nil || e.pid != sleeper || e.code != signalExit(9) {
		return fmt.Errorf("extra child %d: exit %+v, %v; want SIGKILL's code handed back", sleeper, e, err)
	}
	return nil
}

// awaitExit waits for an extra child's exit on mine; one reported to the
// supervisor (tree) instead is the failure under test.
func awaitExit(mine <-chan childExit, tree <-chan childExit) (childExit, error) {
	select {
	case e := <-mine:
		return e, nil
	case e := <-tree:
		return e, fmt.Errorf("reported to the supervisor as the gateway's tree: %+v", e)
	case <-time.After(besideWait):
		return childExit{}, errors.New("no exit")
	}
}

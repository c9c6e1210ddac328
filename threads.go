package main

import (
	"fmt"
	"runtime"
	"sync"
	"syscall"
)

// gwlock's threads, made before the lock is published. Go's runtime makes
// an OS thread when it needs one, and a clone that fails (RLIMIT_NPROC,
// `ulimit -u`) is a fatal error: a goroutine dump and exit 2, with the lock
// already published and the gateway perhaps running. So run makes the
// threads it will need before it takes the lock: idle threads are kept by
// the runtime, and nothing after the lock asks for a new one. Where the OS
// tells how many processes the user may still start, run first checks that
// they, the exec helper and the gateway fit, and otherwise ends in one line
// and exit 71 before anything exists.

// runThreads is how many threads run keeps ready: a supervised gateway
// takes 8 (the main thread, sysmon, the signal thread, the reaper blocked in
// wait4, the lock holder's and the probes' goroutines), with room to spare.
const runThreads = 12

// startThreads is what each start of the gateway takes from the user's
// process limit for a moment beyond gwlock's own: the exec helper's
// runtime (Linux) and the gateway itself.
const startThreads = 5

// reserveThreads makes run's threads, or says why it cannot.
func reserveThreads() error {
	have := threadCount()
	if have <= 0 || have >= runThreads {
		return nil
	}
	if err := processHeadroom(runThreads + startThreads); err != nil {
		return &resourceError{op: "run: reserve threads", err: err}
	}
	// Each goroutine locked to its thread holds one until all are, so the
	// runtime makes the threads now; unlocked, they stay as idle threads.
	var locked sync.WaitGroup
	release := make(chan struct{})
	for i := have; i < runThreads; i++ {
		locked.Add(1)
		go func() {
			runtime.LockOSThread()
			locked.Done()
			<-release
			runtime.UnlockOSThread()
		}()
	}
	locked.Wait()
	close(release)
	return nil
}

// headroomError: the user's process limit leaves too few for gwlock.
type headroomError struct{ uid, limit, others, need int }

func (e *headroomError) Error() string {
	return fmt.Sprintf("uid %d may run %d processes and threads (RLIMIT_NPROC), %d run already, and run needs %d of its own",
		e.uid, e.limit, e.others, e.need)
}

// Is makes it the EAGAIN a fork would have failed with.
func (e *headroomError) Is(target error) bool { return target == syscall.EAGAIN }

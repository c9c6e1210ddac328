package main

import (
	"fmt"
	"runtime"
	"sync"
	"syscall"
	"time"
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
//
// Only where a limit on tasks applies to gwlock: its uid's RLIMIT_NPROC, or
// a pids.max of its cgroup or one above it (systemd's TasksMax, a
// container's pids limit), or where that cannot be read. Making a dozen
// threads ahead costs a fifth of a millisecond and more of CPU, which a
// start pays for nothing where no limit can refuse a clone: there only the
// kernel's own bounds on the whole system's tasks (threads-max, pid_max)
// remain, and a gateway that exhausts those leaves the whole host unable
// to start a process.

// blockedThreads is how many of gwlock's threads can be held at once
// without running Go code, each keeping an OS thread from the runtime's
// pool: sysmon, the template thread (started by the first locked thread),
// the signal thread and the goroutine locked to it, the forking thread
// (run's main goroutine, locked from the first start on), the reaper in
// wait4, a flock waiter, the stderr writer blocked on a full pipe, the
// notify socket's reader, and two for /proc reads and a holder's syscall
// under way.
const blockedThreads = 12

// runThreads is how many threads run keeps ready: each of GOMAXPROCS Ps
// runs Go code on a thread of its own (a GC's mark workers take them all)
// beside the blocked ones. Idle threads are kept, never retired, so the
// runtime asks the OS for no thread once this many exist.
func runThreads() int { return runtime.GOMAXPROCS(0) + blockedThreads }

// startThreads is what each start of the gateway takes from the user's
// process limit for a moment beyond gwlock's own: the exec helper's
// runtime (Linux) and the gateway itself.
const startThreads = 5

// startPoller makes the runtime create its timer machinery now (on Linux an
// epoll instance and an eventfd, two descriptors): the first timer would
// make it later, after the lock is published (the lock file's heartbeat),
// where a descriptor limit reached by then (`ulimit -n`) is the runtime's
// fatal error, exit 2 with the lock left behind, instead of a start that
// fails cleanly. Here, a limit that low stops the runtime before anything
// exists.
func startPoller() { time.NewTimer(time.Hour).Stop() }

// reserveThreads makes run's threads, or says why it cannot.
func reserveThreads() error {
	// GOMAXPROCS set, even to its own value, is fixed: the runtime no
	// longer raises it when the CPU quota grows, which would ask for more
	// threads than were made here.
	runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	if !threadsLimited() {
		return nil
	}
	need := runThreads()
	have := threadCount()
	if have <= 0 || have >= need {
		return nil
	}
	if err := processHeadroom(need + startThreads); err != nil {
		return &resourceError{op: "run: reserve threads", err: err}
	}
	// Each goroutine locked to its thread holds one until all are, so the
	// runtime makes the threads now; unlocked, they stay as idle threads.
	// Some of the locked ones may take threads that were idle, so more are
	// locked until the count is reached.
	var locked sync.WaitGroup
	release := make(chan struct{})
	for more := need - have; more > 0; more = threadsShort(need) {
		for range more {
			locked.Add(1)
			go func() {
				runtime.LockOSThread()
				locked.Done()
				<-release
				runtime.UnlockOSThread()
			}()
		}
		locked.Wait()
	}
	close(release)
	return nil
}

// threadsShort is how many threads this process lacks of need, 0 if its
// count cannot be read.
func threadsShort(need int) int {
	if have := threadCount(); have > 0 {
		return need - have
	}
	return 0
}

// headroomError: the user's process limit leaves too few for gwlock.
type headroomError struct{ uid, limit, others, need int }

func (e *headroomError) Error() string {
	return fmt.Sprintf("uid %d may run %d processes and threads (RLIMIT_NPROC), %d run already, and run needs %d of its own",
		e.uid, e.limit, e.others, e.need)
}

// Is makes it the EAGAIN a fork would have failed with.
func (e *headroomError) Is(target error) bool { return target == syscall.EAGAIN }

// cgroupHeadroomError: a cgroup's pids.max leaves too few tasks for gwlock.
type cgroupHeadroomError struct{ room, need int }

func (e *cgroupHeadroomError) Error() string {
	return fmt.Sprintf("the cgroup's pids.max leaves room for %d more tasks, and run needs %d (raise the unit's TasksMax or the container's pids limit)", e.room, e.need)
}

// Is makes it the EAGAIN a fork would have failed with.
func (e *cgroupHeadroomError) Is(target error) bool { return target == syscall.EAGAIN }

package main

import (
	"errors"
	"gwlock/internal/proc"
	"strings"
	"testing"
	"time"
)

// faultyFacts is fakeFacts with one fact that cannot be learnt, as a judge
// short of descriptors or memory, or facing a hidden /proc, finds it.
type faultyFacts struct {
	*fakeFacts
	fault string
}

var errFault = errors.New("cannot read /proc/6/stat: too many open files")

func (f *faultyFacts) probe(pid int) (pidState, error) {
	st, err := f.fakeFacts.probe(pid)
	switch f.fault {
	case "probe":
		return pidUnknown, errFault
	case "probe-present-unread":
		if st == pidPresent {
			return pidPresent, errFault
		}
	}
	return st, err
}

func (f *faultyFacts) startTime(pid int) (string, error) {
	if f.fault == "startTime" {
		return "", errFault
	}
	return f.fakeFacts.startTime(pid)
}

// survivor fails as the group probe ("groupAlive") when asked of a
// group, or as the token search ("tagged") when asked of a token.
func (f *faultyFacts) survivor(q proc.TreeQuery) (int, error) {
	if (f.fault == "groupAlive" && len(q.Groups) > 0) || (f.fault == "tagged" && q.Token != "") {
		return 0, errFault
	}
	return f.fakeFacts.survivor(q)
}

func (f *faultyFacts) lockCreator(fileID) (int, error) {
	if f.fault == "lockCreator" {
		return 0, errFault
	}
	return 77, nil // a passer-by, not the launcher
}

func (f *faultyFacts) hostname() string {
	if f.fault == "hostname" {
		return ""
	}
	return f.fakeFacts.hostname()
}

// bootID fails with the hostname: a judge that knows its boot id needs
// no hostname to tell its own kernel's payloads.
func (f *faultyFacts) bootID() string {
	if f.fault == "hostname" {
		return ""
	}
	return f.fakeFacts.bootID()
}

func (f *faultyFacts) pidNS() string {
	if f.fault == "pidNS" {
		return ""
	}
	return f.fakeFacts.pidNS()
}

// deadTreePayload names a dead launcher (5) whose gateway's pid (6) was
// reused, whose recorded daemon (7) is gone with its group, and whose
// token nobody carries: with every fact read, a dead owner.
const deadTreePayload = `{"pid":5,"startTime":"50","flock":true,"hostname":"h","bootId":"b","pidNs":"pid:[1]","sessionId":9,` +
	`"childPid":6,"childStartTime":"88","descendants":[{"pid":7,"startTime":"99"}],"token":"t"}`

func deadTreeFacts(fault string) *faultyFacts {
	f := &fakeFacts{host: "h", boot: "b", self: 100, pidns: "pid:[1]", state: pidAbsent,
		others: map[int]fakeProcess{5: {state: pidAbsent}, 6: {pidPresent, "89"}, 7: {state: pidAbsent}}}
	return &faultyFacts{fakeFacts: f, fault: fault}
}

// TestJudgeFailsClosed: every fact the judgement reads, made to fail,
// turns a dead owner into an unknown one that says why, however old its
// file: never dead, never reclaimed. Without the fault the same owner is
// dead, so each case shows the fact was needed.
func TestJudgeFailsClosed(t *testing.T) {
	faults := []string{"probe", "probe-present-unread", "startTime", "groupAlive", "tagged", "lockCreator", "hostname", "pidNS"}
	for _, lock := range []kernelLock{kernelFree, kernelNone, kernelHeld} {
		e := evidence{raw: []byte(deadTreePayload), age: 24 * time.Hour, lock: lock}
		base := judge(e, time.Minute, deadTreeFacts(""))
		if lock != kernelHeld && base.reason != reasonOwnerDead {
			t.Fatalf("lock %d, every fact read: %+v, want %s", lock, base, reasonOwnerDead)
		}
		if lock == kernelHeld && (base.status != ownerUnknown || !strings.Contains(base.unknownReason, "pid 77")) {
			t.Fatalf("held by a passer-by, tree dead: %+v, want unknown naming pid 77", base)
		}
		for _, fault := range faults {
			if fault == "lockCreator" && lock != kernelHeld {
				continue // asked only of a held kernel lock
			}
			v := judge(e, time.Minute, deadTreeFacts(fault))
			if v.reason != "" || v.status == ownerDead || v.status == ownerOrphaned {
				t.Errorf("lock %d, %s unreadable: %+v; want no reclaim and no claim", lock, fault, v)
			}
			if v.status == ownerUnknown && v.unknownReason == "" {
				t.Errorf("lock %d, %s unreadable: unknown without a reason", lock, fault)
			}
		}
	}
}

// TestJudgeUnsupportedFactIsNoFailure: a fact this OS does not offer (the
// token search off Linux) leaves the judgement to the others: a dead tree
// is still dead there.
func TestJudgeUnsupportedFactIsNoFailure(t *testing.T) {
	f := deadTreeFacts("")
	f.taggedErr = errors.ErrUnsupported
	if v := judge(evidence{raw: []byte(deadTreePayload), lock: kernelFree}, time.Minute, f); v.reason != reasonOwnerDead {
		t.Fatalf("no token search on this OS: %+v, want %s", v, reasonOwnerDead)
	}
}

// TestTreeUIDsAskedOfTheTokenSearch: the token search counts carriers of
// the judge's uid and of the uids the launcher saw its tree run as, no
// other.
func TestTreeUIDsAskedOfTheTokenSearch(t *testing.T) {
	raw := strings.Replace(deadTreePayload, `"token":"t"`, `"token":"t","treeUids":[65534,-1,0,1000]`, 1)
	f := deadTreeFacts("")
	judge(evidence{raw: []byte(raw), lock: kernelFree}, time.Minute, f)
	if got := f.taggedUIDs; len(got) != 3 || got[0] != 0 || got[1] != 65534 || got[2] != 1000 {
		t.Fatalf("token search asked for uids %v, want [0 65534 1000]", got)
	}
}

// TestStaleRuleSparesUnreadOwners: an unknown owner whose facts could not
// be read is not reclaimed by age; a listening port still proves it alive.
func TestStaleRuleSparesUnreadOwners(t *testing.T) {
	f := deadTreeFacts("tagged")
	v := staleRule(verdict{status: ownerUnknown, unknownReason: errFault.Error()}, 24*time.Hour, time.Minute, f)
	if v.reason != "" {
		t.Fatalf("old unreadable owner: %+v, want no reason", v)
	}
	f.listen = true
	if v := staleRule(verdict{status: ownerUnknown, port: 80, unknownReason: "x"}, 0, time.Minute, f); v.status != ownerAlive || v.unknownReason != "" {
		t.Fatalf("listening port: %+v, want alive", v)
	}
}

// TestJudgeAcrossTimeNamespaces: start times recorded in another time
// namespace carry its boot-time offset. Another start time there proves no
// reuse (the owner is unknown, with the reason), and no process is passed
// over by the token search for looking older than the launcher; in the
// launcher's own namespace the same facts make the owner dead.
func TestJudgeAcrossTimeNamespaces(t *testing.T) {
	raw := strings.Replace(deadTreePayload, `"token":"t"`, `"token":"t","timeNs":"time:[7]"`, 1)
	for _, c := range []struct {
		judgeNS string
		dead    bool
	}{{"time:[7]", true}, {"time:[8]", false}, {"", false}} {
		f := deadTreeFacts("")
		f.timens = c.judgeNS
		v := judge(evidence{raw: []byte(raw), lock: kernelFree}, time.Minute, f)
		if c.dead && v.reason != reasonOwnerDead {
			t.Errorf("judge in the launcher's time namespace: %+v, want %s", v, reasonOwnerDead)
		}
		if !c.dead && (v.status != ownerUnknown || !strings.Contains(v.unknownReason, "time namespace")) {
			t.Errorf("judge in time namespace %q: %+v, want unknown naming the time namespace", c.judgeNS, v)
		}
		if wantBorn := map[bool]string{true: "50", false: ""}[c.dead]; f.taggedBorn != wantBorn {
			t.Errorf("judge in time namespace %q: token search born after %q, want %q", c.judgeNS, f.taggedBorn, wantBorn)
		}
	}
}

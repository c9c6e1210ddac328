//go:build !linux

package proc

import "errors"

// Off Linux the process table's links, another process's descriptors and
// environment are not readable without privileged interfaces.

func bootID() (string, error)        { return "", unsupported("boot id") }
func pidNamespace() (string, error)  { return "", unsupported("PID namespace") }
func timeNamespace() (string, error) { return "", unsupported("time namespace") }
func descendants() ([]int, error)    { return nil, unsupported("list descendants") }

func flockHolders(uint64, uint64, string) ([]int, error) {
	return nil, unsupported("list flock holders")
}

func flockCreator(uint64, uint64) (int, error) { return 0, unsupported("find a flock's creator") }

func tagged(string, []int, string) (int, error) { return 0, unsupported("search environments") }
func uid(int) (int, error)                      { return 0, unsupported("read a process's uid") }
func stopped(int) (bool, error)                 { return false, unsupported("read a process's state") }

// survivor off Linux: each group probed as groupAlive does here, then the
// token search, which is unsupported.
func survivor(q TreeQuery) (int, error) {
	for _, g := range q.Groups {
		if g <= 0 {
			continue
		}
		alive, err := groupAlive(g, q.Session)
		if alive {
			return g, nil
		}
		if err != nil && !errors.Is(err, errors.ErrUnsupported) {
			return 0, err
		}
	}
	if q.Token == "" {
		return 0, nil
	}
	return tagged(q.Token, q.UIDs, q.BornAfter)
}

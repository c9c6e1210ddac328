//go:build !linux

package proc

// Off Linux the process table's links, another process's descriptors and
// environment are not readable without privileged interfaces.

func bootID() (string, error)       { return "", unsupported("boot id") }
func pidNamespace() (string, error) { return "", unsupported("PID namespace") }
func descendants() ([]int, error)   { return nil, unsupported("list descendants") }

func flockHolders(uint64, uint64, string) ([]int, error) {
	return nil, unsupported("list flock holders")
}

func flockCreator(uint64, uint64) (int, error) { return 0, unsupported("find a flock's creator") }

func tagged(string, []int, string) (int, error) { return 0, unsupported("search environments") }
func uid(int) (int, error)                      { return 0, unsupported("read a process's uid") }
func stopped(int) (bool, error)                 { return false, unsupported("read a process's state") }

package notify

import "testing"

func TestClassify(t *testing.T) {
	for line, want := range map[string]Kind{
		"READY=1":                  Ready,
		"READY=0":                  Drop,
		"STATUS=warming up":        Pass,
		"EXTEND_TIMEOUT_USEC=5000": Pass,
		"MAINPID=1":                Drop,
		"WATCHDOG=1":               Drop,
		"FDSTORE=1":                Drop,
		"":                         Drop,
	} {
		if got := Classify(line); got != want {
			t.Errorf("Classify(%q) = %v, want %v", line, got, want)
		}
	}
}

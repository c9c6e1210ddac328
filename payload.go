package main

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"
)

const (
	maxPayloadWrite = 4 << 10                                           // payloads we write stay under this
	maxPayloadRead  = 64 << 10                                          // never read more than this from a lock file
	payloadPad      = 512                                               // payloads are padded so an update is one pwrite of the same size
	childFieldsRoom = 96 + maxDescendants*48 + 16 + maxTreeUIDs*11 + 26 // the gateway's pid, start time, descendants, tree uids and their overflow fit in this
	restartRoom     = 64                                                // a restart backoff's restartAt and lastExit fit in this
)

// ownerPayload is the JSON written into the lock file. Readers accept the
// seed's schema {pid, createdAt, configPath, startTime?} and ignore unknown fields.
type ownerPayload struct {
	PID       int64  `json:"pid"`
	CreatedAt string `json:"createdAt"`
	// ConfigPath is the config's path as jsonText writes it: Go-quoted
	// when it holds anything unprintable or bytes that are not UTF-8.
	ConfigPath string          `json:"configPath"`
	StartTime  json.RawMessage `json:"startTime,omitempty"`
	BootID     string          `json:"bootId,omitempty"`
	Hostname   string          `json:"hostname,omitempty"`
	Port       int             `json:"port,omitempty"`
	ChildPID   int             `json:"childPid,omitempty"`
	// ChildStartTime tells the recorded gateway from a process that reused its PID.
	ChildStartTime json.RawMessage `json:"childStartTime,omitempty"`
	// Descendants are the other live processes of the gateway's tree (its
	// workers, a daemon that left its group), as gwlock last saw them.
	Descendants []procRef `json:"descendants,omitempty"`
	// TreeUIDs are the real uids, other than the launcher's, that the
	// launcher saw processes of the gateway's tree run as (a gateway that
	// switched user): a process carrying the token counts as the gateway's
	// only when it runs as the lock file's owner or as one of these.
	TreeUIDs []int `json:"treeUids,omitempty"`
	// TreeUIDsOverflow: the tree ran as more uids than TreeUIDs holds. A
	// token search that finds nothing then proves nothing.
	TreeUIDsOverflow bool `json:"treeUidsOverflow,omitempty"`
	// SessionID is the launcher's session, where the gateway's process group
	// lives: a group of the gateway's number in another session is not it.
	SessionID int    `json:"sessionId,omitempty"`
	Flock     bool   `json:"flock"`
	Version   string `json:"version,omitempty"`
	// RestartAt is when the next gateway starts, set only while a restart
	// backoff runs (RFC 3339 UTC, milliseconds); LastExit is the code the
	// last gateway exited with.
	RestartAt string `json:"restartAt,omitempty"`
	LastExit  *int   `json:"lastExit,omitempty"`
	// Token names this holding of the lock. The gateway gets it as
	// GWLOCK_LOCK_TOKEN and every process of its tree inherits it, so a
	// judge finds the tree in the process table when the record lags.
	Token string `json:"token,omitempty"`
	// PIDNS is the launcher's PID namespace: a pid written in another one
	// names some other process here, or none.
	PIDNS string `json:"pidNs,omitempty"`
	// TimeNS is the launcher's time namespace: start times it recorded are
	// offset by that namespace's boot time, so a judge in another one
	// cannot compare them with what it reads.
	TimeNS string `json:"timeNs,omitempty"`
}

// parsePayload decodes a lock file's contents. Any type mismatch, trailing data
// or truncation makes the whole payload unparsable: a half-understood owner is
// judged like an unknown one, never half-trusted.
func parsePayload(b []byte) (*ownerPayload, error) {
	if len(bytes.TrimSpace(b)) == 0 {
		return nil, errors.New("empty payload")
	}
	var p ownerPayload
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&p); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, errors.New("trailing data after payload")
	}
	starts := []json.RawMessage{p.StartTime, p.ChildStartTime}
	for _, d := range p.Descendants {
		starts = append(starts, d.StartTime)
	}
	for _, st := range starts {
		if len(st) > 0 {
			if _, ok := startTimeText(st); !ok {
				return nil, errors.New("a start time is neither a string nor a number")
			}
		}
	}
	if p.Port < 0 || p.Port > 65535 {
		p.Port = 0
	}
	return &p, nil
}

// startTimeText normalises a recorded start time: the seed wrote numbers,
// gwlock writes strings; both compare as the same text.
func startTimeText(raw json.RawMessage) (string, bool) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return "", false
	}
	if raw[0] == '"' {
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return "", false
		}
		return s, s != ""
	}
	var n json.Number
	if json.Unmarshal(raw, &n) != nil {
		return "", false
	}
	return n.String(), true
}

// encode renders the payload padded with spaces to a fixed size, so that a
// later update (childPid) is one write of the same length and a reader never
// sees a shorter tail glued to older bytes.
func (p *ownerPayload) encode() ([]byte, error) {
	b, err := p.marshal()
	if err != nil {
		return nil, err
	}
	if len(b) >= maxPayloadWrite {
		return nil, fmt.Errorf("payload of %d bytes exceeds %d: shorten --config", len(b), maxPayloadWrite)
	}
	// The size depends on the payload without its gateway and restart
	// fields plus room for them, so recording a gateway or a restart later
	// never changes the length, and a payload that leaves no room for them
	// is refused now, before any lock exists, not when the gateway's tree
	// is to be recorded.
	fixed := *p
	fixed.ChildPID, fixed.ChildStartTime, fixed.Descendants, fixed.TreeUIDs, fixed.TreeUIDsOverflow = 0, nil, nil, nil, false
	fixed.RestartAt, fixed.LastExit = "", nil
	fb, err := fixed.marshal()
	if err != nil {
		return nil, err
	}
	if len(fb)+childFieldsRoom+restartRoom >= maxPayloadWrite {
		return nil, fmt.Errorf("payload of %d bytes leaves no room below %d for the gateway's record: shorten --config", len(fb), maxPayloadWrite)
	}
	size := ((len(fb)+childFieldsRoom+restartRoom)/payloadPad + 1) * payloadPad
	if size < len(b)+1 {
		size = (len(b)/payloadPad + 1) * payloadPad
	}
	if size > maxPayloadWrite {
		size = maxPayloadWrite
	}
	out := make([]byte, size)
	copy(out, b)
	for i := len(b); i < size-1; i++ {
		out[i] = ' '
	}
	out[size-1] = '\n'
	return out, nil
}

// procRef names one process for good: a pid and its start time.
// marshal is json.Marshal(p), byte for byte (TestPayloadMarshalIsJSON
// holds the two together), with the object's shape written out here: the
// first json.Marshal of a struct type builds its encoder by reflection,
// about a fifth of a millisecond, and every start writes a payload. Each
// value still goes through json.Marshal, so quoting and escaping are the
// standard library's.
func (p *ownerPayload) marshal() ([]byte, error) {
	w := jsonObject{b: make([]byte, 0, 512)}
	w.num("pid", p.PID, false)
	w.value("createdAt", p.CreatedAt, false)
	w.value("configPath", p.ConfigPath, false)
	w.raw("startTime", p.StartTime)
	w.value("bootId", p.BootID, true)
	w.value("hostname", p.Hostname, true)
	w.num("port", int64(p.Port), true)
	w.num("childPid", int64(p.ChildPID), true)
	w.raw("childStartTime", p.ChildStartTime)
	if len(p.Descendants) > 0 {
		w.key("descendants")
		for i, d := range p.Descendants {
			w.b = append(w.b, "[,"[min(i, 1)])
			sub := jsonObject{b: w.b, err: w.err}
			sub.num("pid", int64(d.PID), false)
			sub.raw("startTime", d.StartTime)
			w.b, w.err = append(sub.b, '}'), sub.err
		}
		w.b = append(w.b, ']')
	}
	if len(p.TreeUIDs) > 0 {
		w.key("treeUids")
		for i, uid := range p.TreeUIDs {
			w.b = strconv.AppendInt(append(w.b, "[,"[min(i, 1)]), int64(uid), 10)
		}
		w.b = append(w.b, ']')
	}
	if p.TreeUIDsOverflow {
		w.value("treeUidsOverflow", true, false)
	}
	w.num("sessionId", int64(p.SessionID), true)
	w.value("flock", p.Flock, false)
	w.value("version", p.Version, true)
	w.value("restartAt", p.RestartAt, true)
	if p.LastExit != nil {
		w.num("lastExit", int64(*p.LastExit), false)
	}
	w.value("token", p.Token, true)
	w.value("pidNs", p.PIDNS, true)
	w.value("timeNs", p.TimeNS, true)
	return append(w.b, '}'), w.err
}

// jsonObject writes one JSON object's members in order; the caller closes
// it. An empty b gets the opening brace with the first member.
type jsonObject struct {
	b   []byte
	n   int
	err error
}

func (w *jsonObject) key(name string) {
	if w.n == 0 {
		w.b = append(w.b, '{')
	} else {
		w.b = append(w.b, ',')
	}
	w.n++
	w.b = append(append(append(w.b, '"'), name...), '"', ':')
}

func (w *jsonObject) num(name string, v int64, omitEmpty bool) {
	if omitEmpty && v == 0 {
		return
	}
	w.key(name)
	w.b = strconv.AppendInt(w.b, v, 10)
}

// value writes a string or a bool through json.Marshal; an empty string is
// left out where omitEmpty.
func (w *jsonObject) value(name string, v any, omitEmpty bool) {
	if s, ok := v.(string); ok && omitEmpty && s == "" {
		return
	}
	w.key(name)
	b, err := json.Marshal(v)
	w.b = append(w.b, b...)
	if w.err == nil {
		w.err = err
	}
}

// raw writes a json.RawMessage as json.Marshal does (compacted, HTML
// characters escaped), left out when empty.
func (w *jsonObject) raw(name string, v json.RawMessage) {
	if len(v) > 0 {
		w.value(name, v, false)
	}
}

type procRef struct {
	PID       int             `json:"pid"`
	StartTime json.RawMessage `json:"startTime,omitempty"`
}

// maxDescendants bounds the recorded descendants, and maxTreeUIDs the
// recorded uids, and so the payload.
const (
	maxDescendants = 8
	maxTreeUIDs    = 4
)

func newPayload(opts lockOptions) ownerPayload {
	self := selfFacts()
	return ownerPayload{
		PID:        int64(os.Getpid()),
		CreatedAt:  time.Now().UTC().Format(payloadTime),
		ConfigPath: jsonText(opts.ConfigPath), // JSON would turn bytes that are not UTF-8 into U+FFFD
		StartTime:  self.startTimeJSON,
		BootID:     self.bootID,
		Hostname:   self.hostname,
		Port:       opts.Port,
		Version:    version,
		SessionID:  self.sessionID,
		Token:      newToken(),
		PIDNS:      self.pidNS,
		TimeNS:     self.timeNS,
	}
}

// newToken is 128 random bits in hex: unique across hosts, containers and
// PID namespaces, where a pid and a start time are not.
func newToken() string {
	var b [16]byte
	if _, err := readRandom(b[:]); err != nil {
		return ""
	}
	return hex.EncodeToString(b[:])
}

// readRandom fills b from the kernel's random source. crypto/rand's
// reader, the default, arms a one-minute timer on its first use (a warning
// should the source block), which starts the runtime's timer and network
// poller machinery; Linux reads getrandom(2) directly, the same source.
var readRandom = rand.Read

// payloadTime is the payload's time format: RFC 3339, milliseconds.
const payloadTime = "2006-01-02T15:04:05.000Z07:00"

package etcd

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"time"
)

// Watch streams key's events from revision rev until ctx ends or the stream
// breaks; each reply goes to fn, which returns false to stop. The stream is
// read through the response body under ctx, so cancelling ctx ends it at
// once. A refused or broken stream moves the client to the next endpoint
// (or fetches a new token, if the old one expired) for the next Watch.
func (c *Client) Watch(ctx context.Context, key string, rev int64, fn func(WatchResp) bool) error {
	body, _ := json.Marshal(map[string]any{"create_request": map[string]any{
		"key": []byte(key), "start_revision": strconv.FormatInt(rev, 10), "prev_kv": true}})
	ep, idx := c.endpoint()
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if _, ok := ctx.Deadline(); !ok {
		var stop context.CancelFunc
		wctx, stop = context.WithTimeout(wctx, time.Hour)
		defer stop()
	}
	r, err := c.post(wctx, ep, "/v3/watch", body, true)
	if err != nil {
		c.reportError("watch", ep, 0, err)
		c.rotate(idx)
		return err
	}
	defer r.Body.Close()
	if r.StatusCode != 200 {
		b, _ := io.ReadAll(io.LimitReader(r.Body, 64<<10))
		e := parseError("watch", ep, r.StatusCode, b)
		if e == nil {
			e = plainError("watch", ep, r.StatusCode, reason(r), nil)
		}
		return c.watchRefused(ctx, ep, idx, e)
	}
	dec := json.NewDecoder(bufio.NewReader(r.Body))
	for {
		reply, err := c.nextWatchReply(ctx, ep, idx, dec)
		if err != nil {
			return err
		}
		if !fn(reply) {
			return nil
		}
	}
}

// watchRefused tells an error etcd answered a watch with, and readies the
// next try: a fresh token if ours expired, else the next endpoint.
func (c *Client) watchRefused(ctx context.Context, ep string, idx int, e *Error) error {
	c.reportError("watch", ep, e.Code, e)
	if e.AuthExpired() && c.user != "" {
		_ = c.Authenticate(ctx)
	} else {
		c.rotate(idx)
	}
	return e
}

// nextWatchReply reads one reply off the watch stream: its result, or why the
// stream is over.
func (c *Client) nextWatchReply(ctx context.Context, ep string, idx int, dec *json.Decoder) (WatchResp, error) {
	var raw json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		if ctx.Err() != nil {
			return WatchResp{}, ctx.Err()
		}
		c.reportError("watch", ep, 0, err)
		c.rotate(idx)
		return WatchResp{}, err
	}
	if e := parseError("watch", ep, 200, raw); e != nil {
		return WatchResp{}, c.watchRefused(ctx, ep, idx, e)
	}
	var wrapped struct {
		Result WatchResp `json:"result"`
	}
	if err := json.Unmarshal(raw, &wrapped); err != nil {
		return WatchResp{}, fmt.Errorf("etcd watch at %s: bad reply: %w", ep, err)
	}
	return wrapped.Result, nil
}

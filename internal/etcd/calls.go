package etcd

import (
	"context"
	"errors"
	"strconv"
	"time"
)

// The v3 messages used here (int64 as strings, bytes as base64).

// Header is the reply header: the store's revision when it answered.
type Header struct {
	Revision int64 `json:"revision,string"`
}

// KV is one key as the store holds it.
type KV struct {
	Key            []byte `json:"key"`
	Value          []byte `json:"value"`
	CreateRevision int64  `json:"create_revision,string"`
	ModRevision    int64  `json:"mod_revision,string"`
	Lease          int64  `json:"lease,string"`
}

// RangeResp is a range reply.
type RangeResp struct {
	Header Header `json:"header"`
	KVs    []KV   `json:"kvs"`
}

// TxnResp is a txn reply.
type TxnResp struct {
	Header    Header `json:"header"`
	Succeeded bool   `json:"succeeded"` // absent when false
	Responses []struct {
		ResponseRange *RangeResp `json:"response_range"`
	} `json:"responses"`
}

// LeaseResp is a grant or keepalive reply.
type LeaseResp struct {
	ID  int64 `json:"ID,string"`
	TTL int64 `json:"TTL,string"` // absent on a keepalive of a dead lease
}

// Event is one change a watch saw.
type Event struct {
	Type   string `json:"type"` // "DELETE", or absent for a PUT
	KV     KV     `json:"kv"`
	PrevKV *KV    `json:"prev_kv"`
}

// WatchResp is one reply on a watch stream.
type WatchResp struct {
	Header          Header  `json:"header"`
	Created         bool    `json:"created"`
	Canceled        bool    `json:"canceled"`
	CompactRevision int64   `json:"compact_revision,string"`
	CancelReason    string  `json:"cancel_reason"`
	Events          []Event `json:"events"`
}

// Grant asks for a lease of ttl (whole seconds).
func (c *Client) Grant(ctx context.Context, ttl time.Duration) (LeaseResp, error) {
	var r LeaseResp
	err := c.Call(ctx, "lease-grant", "/v3/lease/grant", map[string]string{"TTL": strconv.FormatInt(int64(ttl/time.Second), 10)}, &r)
	if err == nil && (r.ID == 0 || r.TTL <= 0) {
		err = errors.New("etcd lease-grant: reply without ID or TTL")
	}
	return r, err
}

// KeepAlive refreshes a lease; TTL 0 in the reply means the lease is gone.
func (c *Client) KeepAlive(ctx context.Context, id int64) (LeaseResp, error) {
	var r LeaseResp
	err := c.Call(ctx, "lease-keepalive", "/v3/lease/keepalive", map[string]string{"ID": strconv.FormatInt(id, 10)}, &r)
	return r, err
}

// Revoke ends a lease and deletes its keys; a lease already gone is no error.
func (c *Client) Revoke(ctx context.Context, id int64) error {
	var r struct{}
	err := c.Call(ctx, "lease-revoke", "/v3/lease/revoke", map[string]string{"ID": strconv.FormatInt(id, 10)}, &r)
	if LeaseNotFound(err) {
		return nil
	}
	return err
}

// TimeToLive reports a lease's remaining TTL in seconds (-1: gone).
func (c *Client) TimeToLive(ctx context.Context, id int64) (int64, error) {
	var r struct {
		TTL int64 `json:"TTL,string"`
	}
	err := c.Call(ctx, "lease-timetolive", "/v3/lease/timetolive", map[string]string{"ID": strconv.FormatInt(id, 10)}, &r)
	return r.TTL, err
}

// Get reads key: its kv (nil if absent) and the store's revision.
func (c *Client) Get(ctx context.Context, key string) (*KV, int64, error) {
	var r RangeResp
	if err := c.Call(ctx, "range", "/v3/kv/range", map[string]any{"key": []byte(key)}, &r); err != nil {
		return nil, 0, err
	}
	if r.Header.Revision <= 0 {
		// etcd answers every range with the store's revision, 1 or more:
		// a reply without one is not etcd's, and says nothing of the key.
		return nil, 0, errors.New("etcd range: reply without a revision")
	}
	if len(r.KVs) == 0 {
		return nil, r.Header.Revision, nil
	}
	return &r.KVs[0], r.Header.Revision, nil
}

// CreateIfAbsent puts key=value on lease if the key does not exist: won,
// and the revision. Otherwise it returns the current holder's kv.
func (c *Client) CreateIfAbsent(ctx context.Context, key string, value []byte, lease int64) (bool, *KV, int64, error) {
	req := map[string]any{
		"compare": []map[string]any{{"key": []byte(key), "target": "CREATE", "result": "EQUAL", "create_revision": "0"}},
		"success": []map[string]any{{"request_put": map[string]any{"key": []byte(key), "value": value, "lease": strconv.FormatInt(lease, 10)}}},
		"failure": []map[string]any{{"request_range": map[string]any{"key": []byte(key)}}},
	}
	var r TxnResp
	if err := c.Call(ctx, "txn", "/v3/kv/txn", req, &r); err != nil {
		return false, nil, 0, err
	}
	if r.Header.Revision <= 0 {
		return false, nil, 0, errors.New("etcd txn: reply without a revision")
	}
	if r.Succeeded {
		return true, nil, r.Header.Revision, nil
	}
	for _, resp := range r.Responses {
		if resp.ResponseRange != nil && len(resp.ResponseRange.KVs) > 0 {
			return false, &resp.ResponseRange.KVs[0], r.Header.Revision, nil
		}
	}
	// Deleted between compare and range cannot happen in one txn; an empty
	// failure range means a reply we do not understand.
	return false, nil, r.Header.Revision, nil
}

// PutIfCreated overwrites key's value while its create revision is still
// created (the key is still the one we made).
func (c *Client) PutIfCreated(ctx context.Context, key string, value []byte, lease, created int64) (bool, error) {
	req := map[string]any{
		"compare": []map[string]any{{"key": []byte(key), "target": "CREATE", "result": "EQUAL", "create_revision": strconv.FormatInt(created, 10)}},
		"success": []map[string]any{{"request_put": map[string]any{"key": []byte(key), "value": value, "lease": strconv.FormatInt(lease, 10)}}},
	}
	var r TxnResp
	err := c.Call(ctx, "txn", "/v3/kv/txn", req, &r)
	return r.Succeeded, err
}

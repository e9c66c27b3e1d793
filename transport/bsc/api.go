package bsc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"
)

const apiPrefix = "/management-api/v1/sims"

func simPath(iccid string, tail ...string) (string, error) {
	if err := ValidateICCID(iccid); err != nil {
		return "", err
	}
	return apiPrefix + "/" + strings.Join(append([]string{iccid}, tail...), "/"), nil
}

func (c *Client) get(ctx context.Context, path string, query url.Values) ([]byte, error) {
	resp, err := c.do(ctx, request{method: http.MethodGet, path: path, query: query, idempotent: true})
	if err != nil {
		return nil, err
	}
	return resp.body, nil
}

func getSIMResource[T any](ctx context.Context, c *Client, iccid string, decode func([]byte) (T, error), tail ...string) (T, error) {
	var zero T
	path, err := simPath(iccid, tail...)
	if err != nil {
		return zero, err
	}
	body, err := c.get(ctx, path, nil)
	if err != nil {
		return zero, err
	}
	v, err := decode(body)
	if err != nil {
		return zero, fmt.Errorf("bsc: GET %s: %w", path, err)
	}
	return v, nil
}

// GetSIM returns one SIM. An unknown ICCID gives ErrNotFound.
func (c *Client) GetSIM(ctx context.Context, iccid string) (*SIM, error) {
	return getSIMResource(ctx, c, iccid, decodeSIM)
}

// ListOptions pages through ListSIMs; zero values let the platform choose.
type ListOptions struct {
	Page    int
	PerPage int
}

// ListSIMs returns one page of the organisation's SIMs.
func (c *Client) ListSIMs(ctx context.Context, opt ListOptions) ([]SIM, error) {
	if opt.Page < 0 || opt.PerPage < 0 {
		return nil, fmt.Errorf("bsc: ListSIMs: page (%d) and per_page (%d) must not be negative", opt.Page, opt.PerPage)
	}
	q := url.Values{}
	if opt.Page > 0 {
		q.Set("page", strconv.Itoa(opt.Page))
	}
	if opt.PerPage > 0 {
		q.Set("per_page", strconv.Itoa(opt.PerPage))
	}
	body, err := c.get(ctx, apiPrefix, q)
	if err != nil {
		return nil, err
	}
	sims, err := decodeSIMList(body)
	if err != nil {
		return nil, fmt.Errorf("bsc: GET %s: %w", apiPrefix, err)
	}
	return sims, nil
}

// ConnectivityInfo returns the platform's view of the SIM on the network.
func (c *Client) ConnectivityInfo(ctx context.Context, iccid string) (*ConnectivityInfo, error) {
	return getSIMResource(ctx, c, iccid, decodeConnectivity, "connectivity_info")
}

// Events returns the SIM's event log.
func (c *Client) Events(ctx context.Context, iccid string) ([]Event, error) {
	return getSIMResource(ctx, c, iccid, decodeEvents, "events")
}

// DataQuota returns the SIM's data allowance. A missing or unusable quota
// gives an error matching ErrQuotaUnavailable (and *DecodeError with the
// details); an unknown ICCID gives ErrNotFound.
func (c *Client) DataQuota(ctx context.Context, iccid string) (*Quota, error) {
	return c.quota(ctx, iccid, "data")
}

// SMSQuota returns the SIM's SMS allowance, like DataQuota.
func (c *Client) SMSQuota(ctx context.Context, iccid string) (*Quota, error) {
	return c.quota(ctx, iccid, "sms")
}

func (c *Client) quota(ctx context.Context, iccid, kind string) (*Quota, error) {
	path, err := simPath(iccid, "quota", kind)
	if err != nil {
		return nil, err
	}
	resp, err := c.do(ctx, request{method: http.MethodGet, path: path, idempotent: true})
	if err != nil {
		return nil, err
	}
	if resp.status == http.StatusNoContent {
		return nil, fmt.Errorf("%w: GET %s: the platform has no %s quota for this SIM (204)", ErrQuotaUnavailable, path, kind)
	}
	q, err := decodeQuota(kind+" quota", resp.body)
	if err != nil {
		return nil, fmt.Errorf("bsc: GET %s: %w", path, err)
	}
	return q, nil
}

// Usage returns the SIM's consumption in the current period.
func (c *Client) Usage(ctx context.Context, iccid string) (*Usage, error) {
	return getSIMResource(ctx, c, iccid, decodeUsage, "usage")
}

// Reset asks the platform for a network-side connectivity reset. Success
// means queued, nothing more. It is not retried after the request may have
// reached the platform (a duplicate reset costs the device its session
// twice); it is retried after 429, which means the platform did not act.
func (c *Client) Reset(ctx context.Context, iccid string) (*ResetQueued, error) {
	path, err := simPath(iccid, "reset")
	if err != nil {
		return nil, err
	}
	resp, err := c.do(ctx, request{method: http.MethodPost, path: path})
	if err != nil {
		return nil, err
	}
	r, err := decodeReset(resp.body)
	if err != nil {
		return nil, fmt.Errorf("bsc: POST %s: %w", path, err)
	}
	return r, nil
}

// maxMTPayload bounds a bench MT SMS to what a handful of concatenated
// parts can carry; the platform splits longer texts itself.
const maxMTPayload = 1600

// SendSMS submits an MT SMS to the SIM (201 Created means accepted, not
// delivered). Retry rules are those of Reset: no duplicate texts.
func (c *Client) SendSMS(ctx context.Context, iccid string, msg MTSMS) (*SMSAccepted, error) {
	path, err := simPath(iccid, "sms")
	if err != nil {
		return nil, err
	}
	switch n := utf8.RuneCountInString(msg.Payload); {
	case n == 0:
		return nil, errors.New("bsc: SendSMS: empty payload")
	case n > maxMTPayload:
		return nil, fmt.Errorf("bsc: SendSMS: payload has %d characters, limit %d", n, maxMTPayload)
	case !utf8.ValidString(msg.Payload):
		return nil, errors.New("bsc: SendSMS: payload is not valid UTF-8")
	}
	body, err := json.Marshal(msg)
	if err != nil {
		return nil, fmt.Errorf("bsc: SendSMS: encoding: %w", err)
	}
	resp, err := c.do(ctx, request{method: http.MethodPost, path: path, body: body, contentType: "application/json"})
	if err != nil {
		return nil, err
	}
	a, err := decodeSMSAccepted(resp.body)
	if err != nil {
		return nil, fmt.Errorf("bsc: POST %s: %w", path, err)
	}
	return a, nil
}

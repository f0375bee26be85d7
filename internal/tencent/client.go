package tencent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// RESTService is the path of Tencent's Live room REST service.
const RESTService = "v4/live_engine_http_srv"

// REST commands of RESTService.
const (
	RESTCreateRoom     = "create_room"
	RESTDestroyRoom    = "destroy_room"
	RESTGetRoomInfo    = "get_room_info"
	RESTUpdateRoomInfo = "update_room_info"
	RESTGetRoomList    = "get_room_list"
)

// ServiceOf is the REST service a command belongs to.
func ServiceOf(command string) string {
	switch command {
	case RESTSetCallback, RESTGetCallback, RESTUpdateCallback, RESTDeleteCallback, RESTSetCallbackToken:
		return ConfigService
	}
	return RESTService
}

// MaxRoomListCount is get_room_list's page size limit.
const MaxRoomListCount = 20

// RoomTypeLive is the only room type the Live service accepts.
const RoomTypeLive = "Live"

// REST error codes the operator handles; the names follow Tencent's descriptions.
const (
	CodeInternal             = 100001 // transient, retry
	CodeInvalidParam         = 100002
	CodeRoomExists           = 100003 // another owner holds the RoomId
	CodeRoomNotFound         = 100004 // absent or dissolved
	CodeNoPermission         = 100006
	CodeNoPackage            = 100007
	CodeRoomExistsSameOwner  = 100010 // idempotent create: the room is ours already
	CodeRoomIDUsedByChat     = 100011
	CodeCreateTooFrequent    = 100012 // one create per RoomId per second
	CodeSensitiveWords       = 100026
	CodeCallbackConfigExists = 100300
	CodeCallbackConfigAbsent = 100301
	CodeMetadataTooManyKeys  = 100500
	CodeMetadataValueTooBig  = 100501
	CodeMetadataTotalTooBig  = 100502

	CodeHTTPParse           = 60002
	CodeJSONParse           = 60003
	CodeWrongAccount        = 60004
	CodeWrongSignature      = 60005
	CodeInvalidSDKAppID     = 60006
	CodeRateLimited         = 60007
	CodeTimeoutOrBadFormat  = 60008
	CodeAdminRequired       = 60010
	CodeSDKAppIDRateLimited = 60011
	CodeSDKAppIDMissing     = 60012
	CodeTooFrequent         = 60018
	CodeTooFrequentAlt      = 60019

	CodeUserSigExpired     = 70001
	CodeUserSigTruncated   = 70003
	CodeUserSigInvalid     = 70009
	CodeUserIDMismatch     = 70013
	CodeSDKAppIDMismatch   = 70014
	CodeKeyNotFound        = 70016
	CodeSDKAppIDNotFound   = 70020
	CodeUserSigRateLimited = 70050
)

// retryableCodes are transient by Tencent's description; anything else would fail again.
var retryableCodes = []int{CodeInternal, CodeRateLimited, CodeTooFrequent, CodeTooFrequentAlt, CodeTimeoutOrBadFormat, CodeCreateTooFrequent}

// signatureCodes mean Tencent refused the UserSig, so the cached one is dropped.
var signatureCodes = []int{CodeWrongSignature, CodeUserSigExpired, CodeUserSigTruncated, CodeUserSigInvalid, CodeUserIDMismatch, CodeSDKAppIDMismatch}

const (
	userSigLifetime      = 24 * time.Hour
	userSigRefreshMargin = time.Hour
	maxBackoff           = 10 * time.Second
	maxResponseBytes     = 8 << 20
)

// APIError is a failure Tencent reported in the response body.
type APIError struct {
	Code      int
	Info      string
	RequestID string
	Command   string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("tencent %s: error %d: %s (request %s)", e.Command, e.Code, e.Info, e.RequestID)
}

// HTTPStatusError is a response with a status other than 200, which Tencent sends only
// when something in front of the service failed.
type HTTPStatusError struct {
	Command    string
	StatusCode int
	Body       string
}

func (e *HTTPStatusError) Error() string {
	return fmt.Sprintf("tencent %s: HTTP %d: %.200s", e.Command, e.StatusCode, e.Body)
}

// transportError is a network failure or a per-attempt timeout.
type transportError struct {
	command string
	err     error
}

func (e *transportError) Error() string { return fmt.Sprintf("tencent %s: %v", e.command, e.err) }
func (e *transportError) Unwrap() error { return e.err }

// IsCode reports whether err carries a Tencent error code among codes.
func IsCode(err error, codes ...int) bool {
	var ae *APIError
	return errors.As(err, &ae) && slices.Contains(codes, ae.Code)
}

// IsRetryable reports whether the same request may succeed later: network errors,
// timeouts, HTTP 5xx and 429, and Tencent's transient codes.
func IsRetryable(err error) bool {
	var te *transportError
	var he *HTTPStatusError
	switch {
	case errors.As(err, &te):
		return true
	case errors.As(err, &he):
		return he.StatusCode >= 500 || he.StatusCode == http.StatusTooManyRequests
	}
	return IsCode(err, retryableCodes...)
}

// Config configures a Client. Zero values take the defaults noted.
type Config struct {
	// BaseURL is the scheme and host, e.g. https://adminapisgp.im.qcloud.com.
	BaseURL   string
	SDKAppID  int64
	AdminUser string
	// SecretKey is read on each request so a rotated key file is picked up.
	SecretKey func() (string, error)
	// HTTPClient defaults to one on http.DefaultTransport, which keeps connections alive
	// as Tencent recommends.
	HTTPClient *http.Client
	// Timeout bounds one attempt; default 5s, above Tencent's 3s server timeout.
	Timeout time.Duration
	// MaxAttempts counts the first try; default 4.
	MaxAttempts int
	// BaseBackoff is the first retry's backoff ceiling; default 200ms.
	BaseBackoff time.Duration
	// ListRate and DefaultRate are requests per second for get_room_list and for each
	// other command; default 10 and 200 as Tencent documents, negative means unlimited.
	ListRate, DefaultRate float64
	// Now is the clock for UserSigs; default time.Now.
	Now func() time.Time
}

// Client calls Tencent's Live room REST API. It is safe for concurrent use.
type Client struct {
	cfg  Config
	base string // scheme and host, with a trailing slash

	mu         sync.Mutex
	limiters   map[string]*rate.Limiter
	sig        string
	sigKey     string
	sigRefresh time.Time
}

// NewClient checks cfg and fills in defaults.
func NewClient(cfg Config) (*Client, error) {
	u, err := url.Parse(cfg.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("tencent: BaseURL %q is not an http(s) URL", cfg.BaseURL)
	}
	switch {
	case cfg.SDKAppID <= 0:
		return nil, fmt.Errorf("tencent: invalid SDKAppID %d", cfg.SDKAppID)
	case cfg.AdminUser == "":
		return nil, errors.New("tencent: AdminUser is required")
	case cfg.SecretKey == nil:
		return nil, errors.New("tencent: SecretKey is required")
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{}
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	if cfg.MaxAttempts <= 0 {
		cfg.MaxAttempts = 4
	}
	if cfg.BaseBackoff <= 0 {
		cfg.BaseBackoff = 200 * time.Millisecond
	}
	if cfg.ListRate == 0 {
		cfg.ListRate = 10
	}
	if cfg.DefaultRate == 0 {
		cfg.DefaultRate = 200
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Client{
		cfg:      cfg,
		base:     strings.TrimRight(cfg.BaseURL, "/") + "/",
		limiters: map[string]*rate.Limiter{},
	}, nil
}

// AdminUser is the account the client calls the API as.
func (c *Client) AdminUser() string { return c.cfg.AdminUser }

// CreateRoom creates a room; RoomType defaults to Live. A retry after a lost response
// may end in CodeRoomExistsSameOwner, which callers should treat as success.
func (c *Client) CreateRoom(ctx context.Context, info RoomInfo) error {
	if err := ValidRoomID(string(info.RoomID)); err != nil {
		return fmt.Errorf("tencent %s: %w", RESTCreateRoom, err)
	}
	if info.RoomType == "" {
		info.RoomType = RoomTypeLive
	}
	return c.call(ctx, RESTCreateRoom, roomInfoBody{info}, nil)
}

// DestroyRoom dissolves a room and returns its final statistics, nil when Tencent
// sends none (older API versions).
func (c *Client) DestroyRoom(ctx context.Context, roomID string) (*Statistic, error) {
	if roomID == "" {
		return nil, fmt.Errorf("tencent %s: empty RoomId", RESTDestroyRoom)
	}
	var out struct {
		Statistic *Statistic `json:"Statistic"`
	}
	if err := c.call(ctx, RESTDestroyRoom, roomIDBody{roomID}, &out); err != nil {
		return nil, err
	}
	return out.Statistic, nil
}

// GetRoomInfo reads a room's settings.
func (c *Client) GetRoomInfo(ctx context.Context, roomID string) (*RoomInfo, error) {
	if roomID == "" {
		return nil, fmt.Errorf("tencent %s: empty RoomId", RESTGetRoomInfo)
	}
	var out struct {
		RoomInfo *RoomInfo `json:"RoomInfo"`
	}
	if err := c.call(ctx, RESTGetRoomInfo, roomIDBody{roomID}, &out); err != nil {
		return nil, err
	}
	if out.RoomInfo == nil {
		return nil, fmt.Errorf("tencent %s: response has no RoomInfo", RESTGetRoomInfo)
	}
	if out.RoomInfo.RoomID == "" {
		out.RoomInfo.RoomID = FlexString(roomID)
	}
	return out.RoomInfo, nil
}

// UpdateRoomInfo changes the fields info carries. Fields the service owns (owner, type,
// creation time, view count) are not sent, so a RoomInfo read back can be sent as is.
func (c *Client) UpdateRoomInfo(ctx context.Context, info RoomInfo) error {
	if info.RoomID == "" {
		return fmt.Errorf("tencent %s: empty RoomId", RESTUpdateRoomInfo)
	}
	info.OwnerAccount, info.RoomType, info.CreateTime, info.ViewCount = "", "", 0, 0
	return c.call(ctx, RESTUpdateRoomInfo, roomInfoBody{info}, nil)
}

// GetRoomList reads one page of rooms from cursor next ("" for the first page). count
// is clamped to 1..MaxRoomListCount. An empty nextCursor means the listing is complete.
func (c *Client) GetRoomList(ctx context.Context, next string, count int) (rooms []RoomInfo, nextCursor string, err error) {
	count = min(max(count, 1), MaxRoomListCount)
	var out struct {
		Next     FlexString `json:"Next"`
		RoomList []RoomInfo `json:"RoomList"`
	}
	body := struct {
		Next  string `json:"Next"`
		Count int    `json:"Count"`
	}{next, count}
	if err := c.call(ctx, RESTGetRoomList, body, &out); err != nil {
		return nil, "", err
	}
	return out.RoomList, string(out.Next), nil
}

// ListAllRooms pages through every room, calling fn once per non-empty page. It stops at
// the first error, from Tencent or from fn, and returns it; rooms already passed to fn
// are then only part of the list.
func (c *Client) ListAllRooms(ctx context.Context, fn func(page []RoomInfo) error) error {
	seen := map[string]bool{}
	next := ""
	for page := 1; ; page++ {
		rooms, cursor, err := c.GetRoomList(ctx, next, MaxRoomListCount)
		if err != nil {
			return fmt.Errorf("listing rooms, page %d: %w", page, err)
		}
		if len(rooms) > 0 {
			if err := fn(rooms); err != nil {
				return err
			}
		}
		if cursor == "" {
			return nil
		}
		if seen[cursor] {
			return fmt.Errorf("listing rooms, page %d: cursor %q repeats", page, cursor)
		}
		seen[cursor] = true
		next = cursor
	}
}

type roomInfoBody struct {
	RoomInfo RoomInfo `json:"RoomInfo"`
}

type roomIDBody struct {
	RoomID string `json:"RoomId"`
}

// call sends req to command with retries and decodes the payload into out (may be nil).
func (c *Client) call(ctx context.Context, command string, req, out any) error {
	return c.callHiding(ctx, command, req, out)
}

// callHiding is call for a request that carries secrets of its own (a callback token):
// they are cut out of the error, as the UserSig is, should Tencent or a proxy echo them.
func (c *Client) callHiding(ctx context.Context, command string, req, out any, secrets ...string) error {
	body, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("tencent %s: encoding the request: %w", command, err)
	}
	for attempt := 1; ; attempt++ {
		err := c.attempt(ctx, command, body, out, secrets)
		if err == nil {
			return nil
		}
		if attempt >= c.cfg.MaxAttempts || !IsRetryable(err) {
			return err
		}
		// A retry is due, so a caller that has given up meanwhile is told that, whether
		// it gave up before the backoff or during it.
		werr := ctx.Err()
		if werr == nil {
			werr = sleep(ctx, c.backoff(attempt, err))
		}
		if werr != nil {
			return fmt.Errorf("tencent %s: %w after %d attempts, last error: %v", command, werr, attempt, err)
		}
	}
}

// backoff is exponential with full jitter, so clients that failed together spread out.
func (c *Client) backoff(attempt int, err error) time.Duration {
	ceiling := min(c.cfg.BaseBackoff, maxBackoff)
	for i := 1; i < attempt && ceiling < maxBackoff; i++ {
		ceiling = min(2*ceiling, maxBackoff)
	}
	d := rand.N(ceiling + 1)
	if IsCode(err, CodeCreateTooFrequent) {
		d = max(d, time.Second)
	}
	return d
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// attempt makes one HTTP request.
func (c *Client) attempt(ctx context.Context, command string, body []byte, out any, secrets []string) error {
	if err := c.limiter(command).Wait(ctx); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("tencent %s: %w", command, ctx.Err())
		}
		// Wait refuses early when the deadline would pass before a token is free.
		return fmt.Errorf("tencent %s: rate limit: %w (%v)", command, context.DeadlineExceeded, err)
	}
	sig, err := c.userSig()
	if err != nil {
		return fmt.Errorf("tencent %s: %w", command, err)
	}
	query := url.Values{
		"sdkappid":    {strconv.FormatInt(c.cfg.SDKAppID, 10)},
		"identifier":  {c.cfg.AdminUser},
		"usersig":     {sig},
		"random":      {strconv.FormatUint(uint64(rand.Uint32()), 10)},
		"contenttype": {"json"},
	}.Encode()
	err = c.send(ctx, command, query, body, out)
	if IsCode(err, signatureCodes...) {
		c.dropUserSig(sig)
	}
	return redactQuery(err, sig, query, secrets...)
}

// send posts body to command with query and decodes the answer into out.
func (c *Client) send(ctx context.Context, command, query string, body []byte, out any) error {
	actx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	// The URL is parsed without its query, so an invalid one cannot be quoted with it.
	req, err := http.NewRequestWithContext(actx, http.MethodPost, c.base+ServiceOf(command)+"/"+command, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("tencent %s: %w", command, err)
	}
	req.URL.RawQuery = query
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.cfg.HTTPClient.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("tencent %s: %w", command, ctx.Err())
		}
		return &transportError{command, err}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("tencent %s: %w", command, ctx.Err())
		}
		return &transportError{command, err}
	}
	if resp.StatusCode != http.StatusOK {
		return &HTTPStatusError{Command: command, StatusCode: resp.StatusCode, Body: string(data)}
	}
	return decodeResponse(command, data, out)
}

type envelope struct {
	ActionStatus string          `json:"ActionStatus"`
	ErrorCode    FlexInt         `json:"ErrorCode"`
	ErrorInfo    string          `json:"ErrorInfo"`
	RequestID    string          `json:"RequestId"`
	Response     json.RawMessage `json:"Response"`
}

// decodeResponse reads the envelope and the payload, which older API versions put at the
// top level instead of under Response.
func decodeResponse(command string, data []byte, out any) error {
	var env envelope
	if err := json.Unmarshal(data, &env); err != nil {
		return fmt.Errorf("tencent %s: response is not a JSON envelope: %w", command, err)
	}
	if env.ErrorCode != 0 || (env.ActionStatus != "" && env.ActionStatus != "OK") {
		info := env.ErrorInfo
		if info == "" {
			info = "ActionStatus " + env.ActionStatus
		}
		return &APIError{Code: int(env.ErrorCode), Info: info, RequestID: env.RequestID, Command: command}
	}
	if out == nil {
		return nil
	}
	payload := []byte(env.Response)
	if len(bytes.TrimSpace(payload)) == 0 || string(payload) == "null" {
		payload = data
	}
	if err := json.Unmarshal(payload, out); err != nil {
		return fmt.Errorf("tencent %s: decoding the response (request %s): %w", command, env.RequestID, err)
	}
	return nil
}

// limiter is command's own token bucket; burst 1 keeps requests evenly spaced.
func (c *Client) limiter(command string) *rate.Limiter {
	c.mu.Lock()
	defer c.mu.Unlock()
	l, ok := c.limiters[command]
	if !ok {
		perSecond := c.cfg.DefaultRate
		if command == RESTGetRoomList {
			perSecond = c.cfg.ListRate
		}
		limit := rate.Limit(perSecond)
		if perSecond < 0 {
			limit = rate.Inf
		}
		l = rate.NewLimiter(limit, 1)
		c.limiters[command] = l
	}
	return l
}

// userSig returns the cached admin UserSig, signing a new one when the key changed or
// less than an hour of validity is left.
func (c *Client) userSig() (string, error) {
	key, err := c.cfg.SecretKey()
	if err != nil {
		return "", fmt.Errorf("reading the secret key: %w", err)
	}
	if key == "" {
		return "", errors.New("the secret key is empty")
	}
	now := c.cfg.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sig != "" && c.sigKey == key && now.Before(c.sigRefresh) {
		return c.sig, nil
	}
	sig, err := GenUserSig(c.cfg.SDKAppID, key, c.cfg.AdminUser, userSigLifetime, now)
	if err != nil {
		return "", err
	}
	c.sig, c.sigKey, c.sigRefresh = sig, key, now.Add(userSigLifetime-userSigRefreshMargin)
	return sig, nil
}

// dropUserSig forgets sig after Tencent refused it, unless another request replaced it.
func (c *Client) dropUserSig(sig string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sig == sig {
		c.sig = ""
	}
}

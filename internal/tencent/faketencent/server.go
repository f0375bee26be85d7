// Package faketencent is an in-process stand-in for Tencent's Live room REST API and its
// callback configuration API, for tests. It checks requests as strictly as the
// documentation allows, keeps rooms, their metadata and the callback configuration in
// memory and can inject faults, latency and rate limiting.
package faketencent

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/liveroom-io/liveroom-operator/internal/tencent"
)

// DefaultListRate is get_room_list's documented limit in requests per second.
const DefaultListRate = 10

var commands = []string{
	tencent.RESTCreateRoom, tencent.RESTDestroyRoom, tencent.RESTGetRoomInfo,
	tencent.RESTUpdateRoomInfo, tencent.RESTGetRoomList,
	tencent.RESTSetRoomMetadata, tencent.RESTDelRoomMetadata, tencent.RESTGetRoomMetadata,
	tencent.RESTSetCallback, tencent.RESTGetCallback, tencent.RESTUpdateCallback,
	tencent.RESTDeleteCallback, tencent.RESTSetCallbackToken,
}

type fault struct{ code, left int }

// Server is a fake Tencent REST endpoint. All methods are safe for concurrent use.
type Server struct {
	ts       *httptest.Server
	closing  chan struct{}
	sdkAppID int64
	admin    string

	mu          sync.Mutex
	key         string
	now         func() time.Time
	rooms       map[string]tencent.RoomInfo
	metadata    map[string]map[string]string
	callback    *tencent.CallbackConfig
	token       CallbackToken
	faults      map[string][]fault
	listFaults  map[int]int
	latency     time.Duration
	listLimiter *rate.Limiter
	calls       map[string]int
	seq         int
}

// New starts a fake for one application whose admin account is adminUser.
func New(sdkAppID int64, adminUser, secretKey string) *Server {
	s := &Server{
		closing:    make(chan struct{}),
		sdkAppID:   sdkAppID,
		admin:      adminUser,
		key:        secretKey,
		now:        time.Now,
		rooms:      map[string]tencent.RoomInfo{},
		metadata:   map[string]map[string]string{},
		faults:     map[string][]fault{},
		listFaults: map[int]int{},
		calls:      map[string]int{},
	}
	s.SetListRateLimit(DefaultListRate)
	s.ts = httptest.NewServer(s)
	return s
}

// URL is the base URL to give the client.
func (s *Server) URL() string { return s.ts.URL }

// Close aborts injected latency and shuts the server down.
func (s *Server) Close() {
	close(s.closing)
	s.ts.Close()
}

// SetSecretKey rotates the key UserSigs are checked against.
func (s *Server) SetSecretKey(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.key = key
}

// SetNow replaces the clock used for UserSig expiry and CreateTime.
func (s *Server) SetNow(now func() time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.now = now
}

// AddRoom stores a room as is, replacing any with the same RoomId.
func (s *Server) AddRoom(ri tencent.RoomInfo) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rooms[string(ri.RoomID)] = clone(ri)
}

// RemoveRoom deletes a room, as Tencent's auto-destroy would.
func (s *Server) RemoveRoom(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.rooms, id)
	delete(s.metadata, id)
}

// Room returns a copy of a stored room.
func (s *Server) Room(id string) (tencent.RoomInfo, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ri, ok := s.rooms[id]
	if !ok {
		return tencent.RoomInfo{}, false
	}
	return clone(ri), true
}

// Rooms returns copies of all rooms in RoomId order.
func (s *Server) Rooms() []tencent.RoomInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]tencent.RoomInfo, 0, len(s.rooms))
	for _, id := range s.sortedIDs() {
		out = append(out, clone(s.rooms[id]))
	}
	return out
}

// FailNext answers code to the next times calls of command that pass authentication.
// Calls queue up: faults injected earlier are served first. times 0 drops the faults
// still queued for command.
func (s *Server) FailNext(command string, code, times int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if times > 0 {
		s.faults[command] = append(s.faults[command], fault{code, times})
	} else {
		delete(s.faults, command)
	}
}

// FailListPage answers code whenever get_room_list is asked for page (1-based) until
// called again with code 0.
func (s *Server) FailListPage(page, code int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if code == 0 {
		delete(s.listFaults, page)
		return
	}
	s.listFaults[page] = code
}

// SetLatency delays every answer by d.
func (s *Server) SetLatency(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.latency = d
}

// SetListRateLimit answers 60007 to get_room_list beyond perSecond (a token bucket of one
// second's worth); 0 means unlimited.
func (s *Server) SetListRateLimit(perSecond float64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if perSecond <= 0 {
		s.listLimiter = nil
		return
	}
	s.listLimiter = rate.NewLimiter(rate.Limit(perSecond), max(1, int(math.Ceil(perSecond))))
}

// Calls counts the requests received for command, failed ones included.
func (s *Server) Calls(command string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[command]
}

// reply is one answer; code 0 is success.
type reply struct {
	code    int
	info    string
	payload any
}

func fail(code int, format string, args ...any) reply {
	return reply{code: code, info: fmt.Sprintf(format, args...)}
}

// ServeHTTP answers one REST request; unknown paths get 404 and other methods 405.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := strings.TrimPrefix(r.URL.Path, "/")
	i := strings.LastIndexByte(path, '/')
	service, command := path[:max(i, 0)], path[i+1:]
	if !slices.Contains(commands, command) || tencent.ServiceOf(command) != service {
		http.NotFound(w, r)
		return
	}
	s.mu.Lock()
	s.calls[command]++
	latency := s.latency
	s.mu.Unlock()
	if latency > 0 {
		t := time.NewTimer(latency)
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.Context().Done():
			return
		case <-s.closing:
			return
		}
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		return
	}

	s.mu.Lock()
	rep := s.handle(command, r, body)
	s.seq++
	env := map[string]any{
		"ActionStatus": "OK",
		"ErrorCode":    rep.code,
		"ErrorInfo":    rep.info,
		"RequestId":    fmt.Sprintf("Id-%d-O-Seq-%d", s.sdkAppID, s.seq),
	}
	s.mu.Unlock()
	if rep.code != 0 {
		env["ActionStatus"] = "FAIL"
	} else if rep.payload != nil {
		env["Response"] = rep.payload
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(env) // the client went away: nothing to tell
}

// handle answers a request; s.mu is held.
func (s *Server) handle(command string, r *http.Request, body []byte) reply {
	if rep, ok := s.authenticate(r); !ok {
		return rep
	}
	if command == tencent.RESTGetRoomList && s.listLimiter != nil && !s.listLimiter.Allow() {
		return fail(tencent.CodeRateLimited, "REST API call frequency exceeded")
	}
	if q := s.faults[command]; len(q) > 0 {
		code := q[0].code
		if q[0].left--; q[0].left == 0 {
			s.faults[command] = q[1:]
		}
		return fail(code, "injected fault")
	}
	if len(strings.TrimSpace(string(body))) == 0 {
		return fail(tencent.CodeHTTPParse, "empty body")
	}
	if !json.Valid(body) {
		return fail(tencent.CodeJSONParse, "body is not JSON")
	}
	switch command {
	case tencent.RESTCreateRoom:
		return s.createRoom(body)
	case tencent.RESTDestroyRoom:
		return s.destroyRoom(body)
	case tencent.RESTGetRoomInfo:
		return s.getRoomInfo(body)
	case tencent.RESTUpdateRoomInfo:
		return s.updateRoomInfo(body)
	case tencent.RESTGetRoomList:
		return s.getRoomList(body)
	case tencent.RESTSetRoomMetadata:
		return s.setRoomMetadata(body)
	case tencent.RESTDelRoomMetadata:
		return s.delRoomMetadata(body)
	case tencent.RESTGetRoomMetadata:
		return s.getRoomMetadata(body)
	default:
		return s.handleConfig(command, body)
	}
}

// authenticate checks the query string the way the documentation describes it.
func (s *Server) authenticate(r *http.Request) (reply, bool) {
	q := r.URL.Query()
	switch {
	case q.Get("contenttype") != "json":
		return fail(tencent.CodeHTTPParse, "contenttype must be json"), false
	case q.Get("sdkappid") == "":
		return fail(tencent.CodeSDKAppIDMissing, "sdkappid is missing"), false
	case q.Get("sdkappid") != strconv.FormatInt(s.sdkAppID, 10):
		return fail(tencent.CodeInvalidSDKAppID, "sdkappid %q is invalid", q.Get("sdkappid")), false
	case q.Get("identifier") != s.admin:
		return fail(tencent.CodeAdminRequired, "identifier %q is not an administrator", q.Get("identifier")), false
	}
	if _, err := strconv.ParseUint(q.Get("random"), 10, 32); err != nil {
		return fail(tencent.CodeHTTPParse, "random must be a 32-bit unsigned integer"), false
	}
	if err := tencent.VerifyUserSig(s.sdkAppID, s.key, s.admin, q.Get("usersig"), s.now()); err != nil {
		if errors.Is(err, tencent.ErrUserSigExpired) {
			return fail(tencent.CodeUserSigExpired, "usersig expired: %v", err), false
		}
		return fail(tencent.CodeUserSigInvalid, "usersig verification failed: %v", err), false
	}
	return reply{}, true
}

func (s *Server) createRoom(body []byte) reply {
	var req struct{ RoomInfo *tencent.RoomInfo }
	if err := json.Unmarshal(body, &req); err != nil || req.RoomInfo == nil {
		return fail(tencent.CodeInvalidParam, "RoomInfo is missing or invalid")
	}
	ri := clone(*req.RoomInfo)
	id := string(ri.RoomID)
	if err := tencent.ValidRoomID(id); err != nil {
		return fail(tencent.CodeInvalidParam, "%v", err)
	}
	if ri.RoomType != tencent.RoomTypeLive {
		return fail(tencent.CodeInvalidParam, "RoomType must be %s", tencent.RoomTypeLive)
	}
	if err := ri.Validate(); err != nil {
		return fail(tencent.CodeInvalidParam, "%v", err)
	}
	if ri.OwnerAccount == "" {
		ri.OwnerAccount = tencent.FlexString(s.admin)
	}
	if old, ok := s.rooms[id]; ok {
		if old.OwnerAccount == ri.OwnerAccount {
			return fail(tencent.CodeRoomExistsSameOwner, "room %s already exists with the same owner", id)
		}
		return fail(tencent.CodeRoomExists, "room %s already exists", id)
	}
	if ri.RoomName == nil {
		ri.RoomName = &id
	}
	ri.CreateTime = tencent.FlexInt(s.now().Unix())
	ri.ViewCount = 0
	s.rooms[id] = ri
	return reply{payload: map[string]string{"RoomId": id}}
}

// roomFor decodes {"RoomId": ...} and finds the room.
func (s *Server) roomFor(body []byte) (string, tencent.RoomInfo, reply, bool) {
	var req struct {
		RoomID tencent.FlexString `json:"RoomId"`
	}
	if err := json.Unmarshal(body, &req); err != nil || req.RoomID == "" {
		return "", tencent.RoomInfo{}, fail(tencent.CodeInvalidParam, "RoomId is missing or invalid"), false
	}
	id := string(req.RoomID)
	ri, ok := s.rooms[id]
	if !ok {
		return id, ri, fail(tencent.CodeRoomNotFound, "room %s does not exist", id), false
	}
	return id, ri, reply{}, true
}

func (s *Server) destroyRoom(body []byte) reply {
	id, _, rep, ok := s.roomFor(body)
	if !ok {
		return rep
	}
	delete(s.rooms, id)
	delete(s.metadata, id)
	return reply{payload: map[string]any{"Statistic": tencent.Statistic{}}}
}

func (s *Server) getRoomInfo(body []byte) reply {
	_, ri, rep, ok := s.roomFor(body)
	if !ok {
		return rep
	}
	return reply{payload: map[string]any{"RoomInfo": clone(ri)}}
}

func (s *Server) updateRoomInfo(body []byte) reply {
	var req struct{ RoomInfo *tencent.RoomInfo }
	if err := json.Unmarshal(body, &req); err != nil || req.RoomInfo == nil || req.RoomInfo.RoomID == "" {
		return fail(tencent.CodeInvalidParam, "RoomInfo with a RoomId is required")
	}
	u := clone(*req.RoomInfo)
	ri, ok := s.rooms[string(u.RoomID)]
	if !ok {
		return fail(tencent.CodeRoomNotFound, "room %s does not exist", u.RoomID)
	}
	ri = clone(ri)
	setIf(&ri.RoomName, u.RoomName)
	setIf(&ri.MaxMemberCount, u.MaxMemberCount)
	setIf(&ri.IsMessageDisabled, u.IsMessageDisabled)
	setIf(&ri.CustomInfo, u.CustomInfo)
	setIf(&ri.IsSeatEnabled, u.IsSeatEnabled)
	setIf(&ri.MaxSeatCount, u.MaxSeatCount)
	setIf(&ri.IsPublicVisible, u.IsPublicVisible)
	setIf(&ri.CoverURL, u.CoverURL)
	setIf(&ri.BackgroundURL, u.BackgroundURL)
	setIf(&ri.Notice, u.Notice)
	setIf(&ri.ActivityStatus, u.ActivityStatus)
	if u.TakeSeatMode != "" {
		ri.TakeSeatMode = u.TakeSeatMode
	}
	if u.Category != nil {
		ri.Category = u.Category
	}
	if err := ri.Validate(); err != nil {
		return fail(tencent.CodeInvalidParam, "%v", err)
	}
	s.rooms[string(ri.RoomID)] = ri
	return reply{}
}

func setIf[T any](dst **T, v *T) {
	if v != nil {
		*dst = v
	}
}

// getRoomList pages in RoomId order; the cursor carries the page number and the last
// RoomId served, so rooms added or removed between pages do not shift the others.
func (s *Server) getRoomList(body []byte) reply {
	var req struct {
		Next  *string
		Count *int
	}
	if err := json.Unmarshal(body, &req); err != nil || req.Next == nil {
		return fail(tencent.CodeInvalidParam, "Next is required")
	}
	count := tencent.MaxRoomListCount
	if req.Count != nil {
		count = *req.Count
	}
	if count < 1 || count > tencent.MaxRoomListCount {
		return fail(tencent.CodeInvalidParam, "Count %d is outside 1..%d", count, tencent.MaxRoomListCount)
	}
	page, after := 1, ""
	if *req.Next != "" {
		var ok bool
		if page, after, ok = decodeCursor(*req.Next); !ok {
			return fail(tencent.CodeInvalidParam, "Next %q is not a cursor", *req.Next)
		}
	}
	if code, ok := s.listFaults[page]; ok {
		return fail(code, "injected fault on page %d", page)
	}
	ids := s.sortedIDs()
	start, _ := slices.BinarySearch(ids, after)
	if after != "" && start < len(ids) && ids[start] == after {
		start++
	}
	end := min(start+count, len(ids))
	list := make([]tencent.RoomInfo, 0, end-start)
	for _, id := range ids[start:end] {
		list = append(list, clone(s.rooms[id]))
	}
	next := ""
	if end < len(ids) {
		next = encodeCursor(page+1, ids[end-1])
	}
	return reply{payload: map[string]any{"Next": next, "RoomList": list}}
}

func encodeCursor(page int, after string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.Itoa(page) + "-" + after))
}

func decodeCursor(c string) (page int, after string, ok bool) {
	raw, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return 0, "", false
	}
	p, after, found := strings.Cut(string(raw), "-")
	page, err = strconv.Atoi(p)
	if !found || err != nil || page < 2 || after == "" {
		return 0, "", false
	}
	return page, after, true
}

func (s *Server) sortedIDs() []string {
	ids := make([]string, 0, len(s.rooms))
	for id := range s.rooms {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// clone deep-copies a room so callers cannot change the store through its pointers.
func clone(ri tencent.RoomInfo) tencent.RoomInfo {
	b, err := json.Marshal(ri)
	if err != nil {
		panic(err)
	}
	var out tencent.RoomInfo
	if err := json.Unmarshal(b, &out); err != nil {
		panic(err)
	}
	return out
}

package faketencent

import (
	"encoding/json"
	"slices"
	"strings"

	"github.com/liveroom-io/liveroom-operator/internal/tencent"
)

// CallbackToken is the callback authentication Tencent holds.
type CallbackToken struct {
	Token   string
	Enabled bool
}

// CallbackConfig returns a copy of the callback configuration, if there is one.
func (s *Server) CallbackConfig() (tencent.CallbackConfig, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.callback == nil {
		return tencent.CallbackConfig{}, false
	}
	return cloneConfig(*s.callback), true
}

// SetCallbackConfig replaces the callback configuration, as a change in the console
// would; nil removes it.
func (s *Server) SetCallbackConfig(cfg *tencent.CallbackConfig) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if cfg == nil {
		s.callback = nil
		return
	}
	c := cloneConfig(*cfg)
	s.callback = &c
}

// CallbackToken returns the callback token and whether Tencent signs with it.
func (s *Server) CallbackToken() CallbackToken {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.token
}

// RoomMetadata returns a copy of a room's metadata.
func (s *Server) RoomMetadata(roomID string) map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]string{}
	for k, v := range s.metadata[roomID] {
		out[k] = v
	}
	return out
}

// SetRoomMetadataDirectly replaces a room's metadata, as a client would change it.
func (s *Server) SetRoomMetadataDirectly(roomID string, md map[string]string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cp := map[string]string{}
	for k, v := range md {
		cp[k] = v
	}
	s.metadata[roomID] = cp
}

func cloneConfig(c tencent.CallbackConfig) tencent.CallbackConfig {
	c.Commands = slices.Clone(c.Commands)
	return c
}

// handleConfig answers the live_config commands; s.mu is held.
func (s *Server) handleConfig(command string, body []byte) reply {
	switch command {
	case tencent.RESTGetCallback:
		if s.callback == nil {
			return fail(tencent.CodeCallbackConfigAbsent, "callback config does not exist")
		}
		return reply{payload: cloneConfig(*s.callback)}
	case tencent.RESTDeleteCallback:
		s.callback = nil
		return reply{}
	case tencent.RESTSetCallbackToken:
		return s.setCallbackToken(body)
	}
	var cfg tencent.CallbackConfig
	if err := json.Unmarshal(body, &cfg); err != nil {
		return fail(tencent.CodeInvalidParam, "invalid body: %v", err)
	}
	if !strings.HasPrefix(cfg.URL, "http://") && !strings.HasPrefix(cfg.URL, "https://") {
		return fail(tencent.CodeInvalidParam, "Url must start with http or https")
	}
	if len(cfg.Commands) == 0 {
		return fail(tencent.CodeInvalidParam, "CallbackCommandList is empty")
	}
	switch {
	case command == tencent.RESTSetCallback && s.callback != nil:
		return fail(tencent.CodeCallbackConfigExists, "callback config already exists")
	case command == tencent.RESTUpdateCallback && s.callback == nil:
		return fail(tencent.CodeCallbackConfigAbsent, "callback config does not exist")
	}
	c := cloneConfig(cfg)
	s.callback = &c
	return reply{}
}

// setCallbackToken takes Token and IsTokenEnable, both required the first time and
// then only the one that changes.
func (s *Server) setCallbackToken(body []byte) reply {
	var req struct {
		Token         *string
		IsTokenEnable *bool
	}
	if err := json.Unmarshal(body, &req); err != nil {
		return fail(tencent.CodeInvalidParam, "invalid body: %v", err)
	}
	first := s.token == (CallbackToken{})
	switch {
	case first && (req.Token == nil || req.IsTokenEnable == nil):
		return fail(tencent.CodeInvalidParam, "Token and IsTokenEnable are required the first time")
	case req.Token != nil && (*req.Token == "" || len(*req.Token) > tencent.MaxCallbackTokenBytes):
		return fail(tencent.CodeInvalidParam, "Token must be 1 to %d characters", tencent.MaxCallbackTokenBytes)
	}
	if req.Token != nil {
		s.token.Token = *req.Token
	}
	if req.IsTokenEnable != nil {
		s.token.Enabled = *req.IsTokenEnable
	}
	return reply{}
}

// metadataRequest is the body of the metadata commands.
type metadataRequest struct {
	RoomID   tencent.FlexString `json:"RoomId"`
	Metadata []tencent.MetadataItem
	Keys     []string
}

// metadataRoom decodes a metadata request and checks that its room exists.
func (s *Server) metadataRoom(body []byte) (metadataRequest, reply, bool) {
	var req metadataRequest
	if err := json.Unmarshal(body, &req); err != nil || req.RoomID == "" {
		return req, fail(tencent.CodeInvalidParam, "RoomId is missing or invalid"), false
	}
	if _, ok := s.rooms[string(req.RoomID)]; !ok {
		return req, fail(tencent.CodeRoomNotFound, "room %s does not exist", req.RoomID), false
	}
	return req, reply{}, true
}

func (s *Server) setRoomMetadata(body []byte) reply {
	req, rep, ok := s.metadataRoom(body)
	if !ok {
		return rep
	}
	if len(req.Metadata) == 0 {
		return fail(tencent.CodeInvalidParam, "Metadata is empty")
	}
	next := map[string]string{}
	for k, v := range s.metadata[string(req.RoomID)] {
		next[k] = v
	}
	for _, it := range req.Metadata {
		if it.Key == "" || len(it.Key) > tencent.MaxMetadataKeyBytes {
			return fail(tencent.CodeInvalidParam, "metadata key %q is empty or too long", it.Key)
		}
		if len(it.Value) > tencent.MaxMetadataValueBytes {
			return fail(tencent.CodeMetadataValueTooBig, "value of %q is larger than %d bytes", it.Key, tencent.MaxMetadataValueBytes)
		}
		next[it.Key] = it.Value
	}
	if len(next) > tencent.MaxMetadataKeys {
		return fail(tencent.CodeMetadataTooManyKeys, "more than %d metadata keys", tencent.MaxMetadataKeys)
	}
	total := 0
	for _, v := range next {
		total += len(v)
	}
	if total > tencent.MaxMetadataTotalBytes {
		return fail(tencent.CodeMetadataTotalTooBig, "metadata values exceed %d bytes", tencent.MaxMetadataTotalBytes)
	}
	s.metadata[string(req.RoomID)] = next
	return reply{}
}

func (s *Server) delRoomMetadata(body []byte) reply {
	req, rep, ok := s.metadataRoom(body)
	if !ok {
		return rep
	}
	if len(req.Keys) == 0 {
		return fail(tencent.CodeInvalidParam, "Keys is empty")
	}
	for _, k := range req.Keys {
		delete(s.metadata[string(req.RoomID)], k)
	}
	return reply{}
}

func (s *Server) getRoomMetadata(body []byte) reply {
	req, rep, ok := s.metadataRoom(body)
	if !ok {
		return rep
	}
	md := s.metadata[string(req.RoomID)]
	keys := req.Keys
	if len(keys) == 0 {
		for k := range md {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	items := []tencent.MetadataItem{}
	for _, k := range keys {
		if v, ok := md[k]; ok {
			items = append(items, tencent.MetadataItem{Key: k, Value: v})
		}
	}
	return reply{payload: map[string]any{"Metadata": items}}
}

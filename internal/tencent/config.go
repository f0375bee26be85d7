package tencent

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// ConfigService is the path of Tencent's Live callback configuration REST service.
const ConfigService = "v4/live_config"

// REST commands of ConfigService.
const (
	RESTSetCallback      = "set_callback"
	RESTGetCallback      = "get_callback"
	RESTUpdateCallback   = "update_callback"
	RESTDeleteCallback   = "delete_callback"
	RESTSetCallbackToken = "set_callback_token"
)

// Room metadata commands of RESTService.
const (
	RESTSetRoomMetadata = "set_room_metadata"
	RESTDelRoomMetadata = "del_room_metadata"
	RESTGetRoomMetadata = "get_room_metadata"
)

// Callback commands about metadata and the app's room quota.
const (
	CommandSetMetadata                 = "Live.CallbackAfterSetMetadata"
	CommandDelMetadata                 = "Live.CallbackAfterDelMetadata"
	CommandCreateRoomReachingThreshold = "Live.CallbackAfterCreateRoomReachingThreshold"
)

// OperatorCommands are the callback commands the operator handles: the room commands,
// metadata changes and the room quota warning. A managed app subscribes Tencent to these.
func OperatorCommands() []string {
	return []string{
		CommandCreateRoom, CommandDestroyRoom, CommandUpdateRoomInfo, CommandMemberStateChanged,
		CommandChangeOwner, CommandModifyAdmin, CommandSeatInfoChanged,
		CommandSetMetadata, CommandDelMetadata, CommandCreateRoomReachingThreshold,
	}
}

// Tencent's limits on a callback configuration and a room's metadata.
const (
	MaxCallbackTokenBytes   = 128
	MaxMetadataKeys         = 10
	MaxMetadataKeyBytes     = 50
	MaxMetadataValueBytes   = 2048
	MaxMetadataTotalBytes   = 16384
	maxCallbackURLBytes     = 1024
	maxCallbackCommandBytes = 128
)

// CallbackConfig is where Tencent sends an app's callbacks and for which commands.
type CallbackConfig struct {
	URL      string   `json:"Url"`
	Commands []string `json:"CallbackCommandList"`
}

// Equal reports whether two configurations have the same URL and the same set of
// commands, in any order.
func (c CallbackConfig) Equal(o CallbackConfig) bool {
	return c.URL == o.URL && slices.Equal(sortedSet(c.Commands), sortedSet(o.Commands))
}

func sortedSet(list []string) []string {
	out := slices.Clone(list)
	slices.Sort(out)
	return slices.Compact(out)
}

func (c CallbackConfig) validate(command string) error {
	switch {
	case !strings.HasPrefix(c.URL, "http://") && !strings.HasPrefix(c.URL, "https://"):
		return fmt.Errorf("tencent %s: the callback URL must start with http:// or https://", command)
	case len(c.URL) > maxCallbackURLBytes:
		return fmt.Errorf("tencent %s: the callback URL is longer than %d bytes", command, maxCallbackURLBytes)
	case len(c.Commands) == 0:
		return fmt.Errorf("tencent %s: no callback command", command)
	}
	for _, cmd := range c.Commands {
		if cmd == "" || len(cmd) > maxCallbackCommandBytes {
			return fmt.Errorf("tencent %s: callback command %q is empty or too long", command, cmd)
		}
	}
	return nil
}

// GetCallback reads the app's callback configuration; without one Tencent answers
// CodeCallbackConfigAbsent.
func (c *Client) GetCallback(ctx context.Context) (*CallbackConfig, error) {
	var out CallbackConfig
	if err := c.call(ctx, RESTGetCallback, struct{}{}, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// SetCallback creates the app's callback configuration; when it exists already Tencent
// answers CodeCallbackConfigExists, and UpdateCallback is the call to make.
func (c *Client) SetCallback(ctx context.Context, cfg CallbackConfig) error {
	if err := cfg.validate(RESTSetCallback); err != nil {
		return err
	}
	return c.call(ctx, RESTSetCallback, cfg, nil)
}

// UpdateCallback replaces the app's callback configuration; without one Tencent answers
// CodeCallbackConfigAbsent.
func (c *Client) UpdateCallback(ctx context.Context, cfg CallbackConfig) error {
	if err := cfg.validate(RESTUpdateCallback); err != nil {
		return err
	}
	return c.call(ctx, RESTUpdateCallback, cfg, nil)
}

// DeleteCallback removes the app's callback configuration: Tencent stops calling.
func (c *Client) DeleteCallback(ctx context.Context) error {
	return c.call(ctx, RESTDeleteCallback, struct{}{}, nil)
}

// SetCallbackToken sets the token Tencent signs callbacks with, and whether it signs
// them. The token is kept out of any error the call returns.
func (c *Client) SetCallbackToken(ctx context.Context, token string, enable bool) error {
	if token == "" || len(token) > MaxCallbackTokenBytes {
		return fmt.Errorf("tencent %s: a token is 1 to %d bytes", RESTSetCallbackToken, MaxCallbackTokenBytes)
	}
	body := struct {
		Token         string
		IsTokenEnable bool
	}{token, enable}
	return c.callHiding(ctx, RESTSetCallbackToken, body, nil, token)
}

// MetadataItem is one key of a room's metadata on the wire.
type MetadataItem struct {
	Key   string `json:"Key"`
	Value string `json:"Value"`
}

// SetRoomMetadata sets keys of a room's metadata, leaving the others as they are.
// Tencent's limits are checked first: at most MaxMetadataKeys keys of at most
// MaxMetadataKeyBytes, values of at most MaxMetadataValueBytes, MaxMetadataTotalBytes of
// values in all (Tencent counts the room's other keys as well: CodeMetadataTooManyKeys,
// CodeMetadataTotalTooBig).
func (c *Client) SetRoomMetadata(ctx context.Context, roomID string, metadata map[string]string) error {
	if roomID == "" {
		return fmt.Errorf("tencent %s: empty RoomId", RESTSetRoomMetadata)
	}
	if err := ValidateMetadata(metadata); err != nil {
		return fmt.Errorf("tencent %s: %w", RESTSetRoomMetadata, err)
	}
	if len(metadata) == 0 {
		return nil
	}
	items := make([]MetadataItem, 0, len(metadata))
	for _, k := range sortedKeys(metadata) {
		items = append(items, MetadataItem{k, metadata[k]})
	}
	body := struct {
		RoomID   string `json:"RoomId"`
		Metadata []MetadataItem
	}{roomID, items}
	return c.call(ctx, RESTSetRoomMetadata, body, nil)
}

// DelRoomMetadata deletes keys of a room's metadata.
func (c *Client) DelRoomMetadata(ctx context.Context, roomID string, keys []string) error {
	if roomID == "" {
		return fmt.Errorf("tencent %s: empty RoomId", RESTDelRoomMetadata)
	}
	if len(keys) == 0 {
		return nil
	}
	body := struct {
		RoomID string `json:"RoomId"`
		Keys   []string
	}{roomID, sortedSet(keys)}
	return c.call(ctx, RESTDelRoomMetadata, body, nil)
}

// GetRoomMetadata reads the given keys of a room's metadata, or all of them when keys is
// empty.
func (c *Client) GetRoomMetadata(ctx context.Context, roomID string, keys []string) (map[string]string, error) {
	if roomID == "" {
		return nil, fmt.Errorf("tencent %s: empty RoomId", RESTGetRoomMetadata)
	}
	body := struct {
		RoomID string `json:"RoomId"`
		Keys   []string
	}{roomID, sortedSet(keys)}
	if body.Keys == nil {
		body.Keys = []string{}
	}
	var out struct {
		Metadata []MetadataItem `json:"Metadata"`
	}
	if err := c.call(ctx, RESTGetRoomMetadata, body, &out); err != nil {
		return nil, err
	}
	md := make(map[string]string, len(out.Metadata))
	for _, it := range out.Metadata {
		md[it.Key] = it.Value
	}
	return md, nil
}

// ValidateMetadata checks metadata against Tencent's limits.
func ValidateMetadata(metadata map[string]string) error {
	if len(metadata) > MaxMetadataKeys {
		return fmt.Errorf("%d metadata keys, at most %d", len(metadata), MaxMetadataKeys)
	}
	var errs []error
	total := 0
	for _, k := range sortedKeys(metadata) {
		v := metadata[k]
		total += len(v)
		switch {
		case k == "":
			errs = append(errs, errors.New("empty metadata key"))
		case len(k) > MaxMetadataKeyBytes:
			errs = append(errs, fmt.Errorf("metadata key %q is longer than %d bytes", k, MaxMetadataKeyBytes))
		case len(v) > MaxMetadataValueBytes:
			errs = append(errs, fmt.Errorf("metadata value of %q is longer than %d bytes", k, MaxMetadataValueBytes))
		}
	}
	if total > MaxMetadataTotalBytes {
		errs = append(errs, fmt.Errorf("metadata values hold %d bytes, at most %d", total, MaxMetadataTotalBytes))
	}
	return errors.Join(errs...)
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

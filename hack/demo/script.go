package main

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// script walks through a second app and a room's life, from create to destroy callback.
func (d *demo) script(ctx context.Context) error {
	if err := d.do("Adding a second app on the same callback endpoint, managed by the operator through its REST API (a fake Tencent)",
		"check `kubectl describe liveapp shop -n shop` and the controller's log", func() error { return d.addShopApp(ctx) }); err != nil {
		return err
	}
	if err := d.do("Applying the sample RecordingPolicy in namespace "+roomNS+" (records every room of type Live)",
		"see config/samples/live_v1alpha1_recordingpolicy.yaml", func() error {
			policy, err := d.policyFile()
			if err != nil {
				return err
			}
			return d.show(ctx, "apply", "-n", roomNS, "-f", policy)
		}); err != nil {
		return err
	}
	if err := d.do("Sending signed callbacks to the one endpoint: three rooms of the example app (one RoomId is no DNS name), "+
		"members and seats, and a room of the shop app", "the callback server's log says why a callback was refused",
		func() error { return d.sendCreates(ctx) }); err != nil {
		return err
	}
	if err := d.do("Rooms, recording Jobs and their pods",
		"check the controller log and `kubectl describe liveroom "+firstRoom+" -n "+roomNS+"`", func() error { return d.showRooms(ctx) }); err != nil {
		return err
	}
	return d.do("Sending the destroy callback of "+firstRoom+": the room ends, its recording stops",
		"check the callback server's and the controller's logs", func() error { return d.destroyFirstRoom(ctx) })
}

func (d *demo) sendCreates(ctx context.Context) error {
	now := time.Now().Unix()
	for _, body := range []string{
		fmt.Sprintf(`{"CallbackCommand":"Live.CallbackAfterCreateRoom","Operator_Account":"admin","RoomInfo":{"RoomId":"tandy-test-rest","RoomName":"tandy-test-rest","RoomType":"Live","Owner_Account":"user3","MaxMemberCount":300,"IsMessageDisabled":true,"CustomInfo":"custom123","IsSeatEnabled":true,"TakeSeatMode":"ApplyToTake","MaxSeatCount":16,"CreateTime":%d,"IsPublicVisible":true,"CoverURL":"cover url","Category":[1,2]}}`, now),
		fmt.Sprintf(`{"CallbackCommand":"Live.CallbackAfterCreateRoom","RoomInfo":{"RoomId":"Room_ABC.01","RoomName":"Evening show","RoomType":"Live","Owner_Account":144115216631667826,"TakeSeatMode":2,"MaxSeatCount":8,"CreateTime":%d,"Category":[3]}}`, now),
		fmt.Sprintf(`{"CallbackCommand":"Live.CallbackAfterCreateRoom","RoomInfo":{"RoomId":"karaoke-7","RoomName":"Karaoke","RoomType":"Live","Owner_Account":"user9","CreateTime":%d}}`, now),
	} {
		if err := d.callback(ctx, d.example, "Live.CallbackAfterCreateRoom", body); err != nil {
			return err
		}
	}
	nowMs := time.Now().UnixMilli()
	if err := d.callback(ctx, d.example, "Live.CallbackAfterMemberStateChanged", fmt.Sprintf(`{"CallbackCommand":"Live.CallbackAfterMemberStateChanged","RoomId":"tandy-test-rest","EventType":"Online","EventCause":"Enter","MemberList":[{"Member_Account":"jared"},{"Member_Account":"tommy"}],"EventTime":%d}`, nowMs)); err != nil {
		return err
	}
	if err := d.callback(ctx, d.example, "Mic.CallbackAfterSeatInfoChanged", fmt.Sprintf(`{"CallbackCommand":"Mic.CallbackAfterSeatInfoChanged","RoomId":"tandy-test-rest","SeatList":[{"Index":0,"Member_Account":"user3"},{"Index":1,"Member_Account":"jared"},{"Index":2}],"EventTime":%d}`, nowMs)); err != nil {
		return err
	}
	return d.callback(ctx, d.shop, "Live.CallbackAfterCreateRoom", fmt.Sprintf(`{"CallbackCommand":"Live.CallbackAfterCreateRoom","RoomInfo":{"RoomId":"grand-opening","RoomName":"Grand opening","RoomType":"Live","Owner_Account":"shopkeeper","CreateTime":%d}}`, now))
}

// showRooms waits for the example app's rooms to record and the shop's room to be stored,
// and shows them.
func (d *demo) showRooms(ctx context.Context) error {
	if err := d.waitFor(ctx, "recording pod of "+firstRoom+" Running", func() (bool, error) {
		out, err := d.get(ctx, "get", "pods", "-n", roomNS, "-l", "live.liveroom.io/room="+firstRoom, "-o", "jsonpath={.items[*].status.phase}")
		return strings.Contains(out, "Running"), err
	}); err != nil {
		return err
	}
	if err := d.waitFor(ctx, "rooms reconciled", func() (bool, error) {
		out, err := d.get(ctx, "get", "liverooms", "-n", roomNS, "-o", `jsonpath={.items[*].status.conditions[?(@.type=="Recording")].status}`)
		return strings.Count(out, "True") == 3, err
	}); err != nil {
		return err
	}
	for _, args := range [][]string{
		{"get", "liverooms", "-n", roomNS, "-o", "wide"},
		{"get", "liverooms", "-n", shopApp, "-o", "wide"},
		{"get", "recordingpolicies", "-n", roomNS},
		{"get", "jobs,pods", "-n", roomNS, "-o", "wide"},
	} {
		if err := d.show(ctx, args...); err != nil {
			return err
		}
	}
	return nil
}

func (d *demo) destroyFirstRoom(ctx context.Context) error {
	if err := d.callback(ctx, d.example, "Live.CallbackAfterDestroyRoom", fmt.Sprintf(`{"CallbackCommand":"Live.CallbackAfterDestroyRoom","Operator_Account":"admin","RoomId":"tandy-test-rest","EventType":"DestroyByUser","EventTime":%d,"Statistic":{"TotalViewers":2,"TotalGiftsSent":0,"TotalGiftCoins":0,"TotalUniqueGiftSenders":0,"TotalLikesReceived":5}}`, time.Now().UnixMilli())); err != nil {
		return err
	}
	if err := d.waitFor(ctx, "recording of "+firstRoom+" Stopped and its pods gone", func() (bool, error) {
		phase, err := d.get(ctx, "get", "liveroom", firstRoom, "-n", roomNS, "-o", "jsonpath={.status.recordings[*].phase}")
		if err != nil {
			return false, err
		}
		pods, err := d.get(ctx, "get", "pods", "-n", roomNS, "-l", "live.liveroom.io/room="+firstRoom, "-o", "name")
		return phase == "Stopped" && strings.TrimSpace(pods) == "", err
	}); err != nil {
		return err
	}
	for _, args := range [][]string{
		{"get", "liverooms", "-n", roomNS},
		{"get", "jobs", "-n", roomNS, "-o", "custom-columns=JOB:.metadata.name,ROOM:.metadata.labels.live\\.liveroom\\.io/room,SUSPENDED:.spec.suspend,ACTIVE:.status.active"},
		{"get", "liveroom", firstRoom, "-n", roomNS, "-o", "jsonpath={.status.phase} {.status.endReason} viewers={.status.statistics.totalViewers} recording={.status.recordings[0].phase}{\"\\n\"}"},
	} {
		if err := d.show(ctx, args...); err != nil {
			return err
		}
	}
	return nil
}

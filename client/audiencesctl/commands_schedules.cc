// The schedules commands, as data for the generic runner (command.h).
#include "audiencesctl/command.h"
#include "audiencesctl/tables.h"
#include "segment/audiences/v1/audiences.pb.h"

namespace audiencesctl {
namespace {

namespace v1 = ::segment::audiences::v1;

// --strategy, --interval, --days/--hours/--timezone into a schedule input (add or update).
template <typename Input>
absl::Status ApplyScheduleFlags(Ctx& c, Input* in) {
  const bool periodic = c.args.Has("interval");
  const bool days = c.args.Has("days") || c.args.Has("hours") || c.args.Has("timezone");
  if (periodic && days) {
    return Usage(
        "--interval (periodic) and --days/--hours/--timezone (specific days) exclude "
        "each other");
  }
  if (periodic) {
    in->set_strategy(v1::SCHEDULE_STRATEGY_PERIODIC);
    in->mutable_periodic()->set_interval(c.args.Get("interval"));
  }
  if (days) {
    in->set_strategy(v1::SCHEDULE_STRATEGY_SPECIFIC_DAYS);
    v1::SpecificDaysConfig* config = in->mutable_specific_days();
    if (c.args.Has("days")) {
      absl::StatusOr<std::vector<int>> list = ParseDays(c.args.Get("days"));
      if (!list.ok()) return Usage(list.status().message());
      config->clear_days();
      for (int d : *list) config->add_days(d);
    }
    if (c.args.Has("hours")) {
      absl::StatusOr<std::vector<int>> list = ParseIntList("hours", c.args.Get("hours"));
      if (!list.ok()) return Usage(list.status().message());
      config->clear_hours();
      for (int h : *list) config->add_hours(h);
    }
    if (c.args.Has("timezone")) config->set_timezone(c.args.Get("timezone"));
  }
  if (c.args.Has("strategy")) {
    absl::StatusOr<int> strategy = ParseEnumFlag(v1::ScheduleStrategy_descriptor(), "strategy",
                                                 "SCHEDULE_STRATEGY_", c.args.Get("strategy"));
    if (!strategy.ok()) return strategy.status();
    in->set_strategy(static_cast<v1::ScheduleStrategy>(*strategy));
  }
  if (in->strategy() == v1::SCHEDULE_STRATEGY_UNSPECIFIED && in->has_periodic()) {
    in->set_strategy(v1::SCHEDULE_STRATEGY_PERIODIC);
  }
  if (in->strategy() == v1::SCHEDULE_STRATEGY_UNSPECIFIED && in->has_specific_days()) {
    in->set_strategy(v1::SCHEDULE_STRATEGY_SPECIFIC_DAYS);
  }
  if (in->ByteSizeLong() == 0) {
    return Usage("no schedule: give --interval, or --days/--hours/--timezone, or -f");
  }
  return absl::OkStatus();
}

absl::Status AddPrepare(Ctx& c, Message*, Message* body) {
  return ApplyScheduleFlags(c, static_cast<v1::AddAudienceScheduleToAudienceAlphaInput*>(body));
}

absl::Status UpdatePrepare(Ctx& c, Message*, Message* body) {
  return ApplyScheduleFlags(c, static_cast<v1::UpdateAudienceScheduleForAudienceAlphaInput*>(body));
}

}  // namespace

std::vector<Command> ScheduleCommands() {
  const std::vector<FlagUse> kScheduleFlags = {{"interval"}, {"days"},     {"hours"},
                                               {"timezone"}, {"strategy"}, {"file"}};
  const IdSpec kAudience = {"audience", "id", false};
  const IdSpec kSchedule = {"id", "schedule_id", true};
  std::vector<FlagUse> add_flags = {{"space"},
                                    {"audience", "Audience id (or give it as the argument)."}};
  add_flags.insert(add_flags.end(), kScheduleFlags.begin(), kScheduleFlags.end());
  std::vector<FlagUse> update_flags = {
      {"space"}, {"audience"}, {"id", "Schedule id (or give it as the argument)."}};
  update_flags.insert(update_flags.end(), kScheduleFlags.begin(), kScheduleFlags.end());
  return {
      Command("schedules list")
          .Synopsis("--space ID --audience ID")
          .Summary("List the schedules of a (LINKED) audience.")
          .Flags({{"space"}, {"audience", "Audience id (or give it as the argument)."}})
          .Example("  audiencesctl schedules list --space spa_1 --audience \"$AUDIENCE_ID\"")
          .Rpc("ListAudienceSchedulesFromSpaceAndAudience")
          .Ids({{"audience", "id"}})
          .Table(tables::Schedules)
          .Listing("audienceSchedules", "No schedules for audience {id}."),
      Command("schedules get")
          .Synopsis("--space ID --audience ID --id SCHEDULE")
          .Summary("Show one schedule.")
          .Flags({{"space"}, {"audience"}, {"id", "Schedule id (or give it as the argument)."}})
          .Example("  audiencesctl schedules get --space spa_1 --audience \"$AUDIENCE_ID\" "
                   "--id \"$SCHEDULE_ID\"")
          .Rpc("GetAudienceScheduleFromSpaceAndAudience")
          .Ids({kAudience, kSchedule})
          .Table(tables::Schedule),
      Command("schedules add")
          .Synopsis(
              "--space ID --audience ID (--interval 1h | --days mon,wed --hours 9 --timezone TZ)")
          .Summary("Add a schedule to a LINKED audience.")
          .Description(
              "Periodic with --interval; on specific days with --days, --hours and --timezone. "
              "The\nbody is an AddAudienceScheduleToAudienceAlphaInput: from -f, then the flags.")
          .Flags(add_flags)
          .Example("  audiencesctl schedules add --space spa_1 --audience \"$AUDIENCE_ID\" "
                   "--interval 1d\n"
                   "  audiencesctl schedules add --space spa_1 --audience \"$AUDIENCE_ID\" \\\n"
                   "      --days mon,thu --hours 9,17 --timezone America/New_York")
          .Rpc("AddAudienceScheduleToAudience", "schedule")
          .Ids({{"audience", "id"}})
          .Then(AddPrepare)
          .Table(tables::Schedule),
      Command("schedules update")
          .Synopsis("--space ID --audience ID --id SCHEDULE (--interval I | --days ...)")
          .Summary("Change a schedule.")
          .Flags(update_flags)
          .Example("  audiencesctl schedules update --space spa_1 --audience \"$AUDIENCE_ID\" "
                   "--id \"$SCHEDULE_ID\" \\\n      --interval 12h")
          .Rpc("UpdateAudienceScheduleForAudience", "schedule")
          .Ids({kAudience, kSchedule})
          .Then(UpdatePrepare)
          .Table(tables::Schedule),
      Command("schedules delete")
          .Synopsis("--space ID --audience ID --id SCHEDULE")
          .Summary("Remove a schedule from an audience.")
          .Flags({{"space"}, {"audience"}, {"id", "Schedule id (or give it as the argument)."}})
          .Example("  audiencesctl schedules delete --space spa_1 --audience \"$AUDIENCE_ID\" "
                   "--id \"$SCHEDULE_ID\"")
          .Rpc("RemoveAudienceScheduleFromAudience")
          .Ids({kAudience, kSchedule})
          .Table(tables::ScheduleDeleted),
  };
}

}  // namespace audiencesctl

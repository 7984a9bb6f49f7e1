// The audiences and consumers commands, as data for the generic runner (command.h).
#include "absl/strings/str_cat.h"
#include "audiencesctl/command.h"
#include "audiencesctl/tables.h"
#include "segment/audiences/v1/audiences.pb.h"

namespace audiencesctl {
namespace {

namespace v1 = ::segment::audiences::v1;

// --enabled / --enabled=false / --disabled into the body's `enabled`.
absl::Status ApplyEnabled(Ctx& c, Message* body) {
  if (c.args.Has("enabled") && c.args.Has("disabled")) {
    return Usage("--enabled and --disabled contradict each other");
  }
  const auto* f = body->GetDescriptor()->FindFieldByName("enabled");
  if (c.args.Has("enabled")) body->GetReflection()->SetBool(body, f, c.args.GetBool("enabled"));
  if (c.args.Has("disabled")) body->GetReflection()->SetBool(body, f, !c.args.GetBool("disabled"));
  return absl::OkStatus();
}

// A new audience is of type USERS unless said otherwise.
absl::Status CreatePrepare(Ctx& c, Message*, Message* body) {
  auto* a = static_cast<v1::CreateAudienceInput*>(body);
  if (a->audience_type() == v1::AUDIENCE_TYPE_UNSPECIFIED) {
    a->set_audience_type(v1::AUDIENCE_TYPE_USERS);
  }
  return ApplyEnabled(c, body);
}

absl::Status UpdatePrepare(Ctx& c, Message*, Message* body) {
  absl::Status s = ApplyEnabled(c, body);
  if (!s.ok()) return s;
  auto* a = static_cast<v1::UpdateAudienceForSpaceInput*>(body);
  if (a->options().ByteSizeLong() == 0) a->clear_options();
  if (a->ByteSizeLong() == 0) {
    return Usage("nothing to update: give --name, --description, --query, --enabled, ... or -f");
  }
  return absl::OkStatus();
}

// --search-type needs --search, whose type defaults to name.
absl::Status SearchPrepare(Ctx& c, Message* request, Message*) {
  if (c.args.Has("search-type") && !c.args.Has("search")) {
    return Usage("--search-type goes with --search TEXT");
  }
  const auto* f = request->GetDescriptor()->FindFieldByName("search");
  auto* search = static_cast<v1::ListAudienceSearchInput*>(
      request->GetReflection()->MutableMessage(request, f));
  if (c.args.Has("search") && search->type() == v1::AUDIENCE_SEARCH_TYPE_UNSPECIFIED) {
    search->set_type(v1::AUDIENCE_SEARCH_TYPE_NAME);
  }
  return absl::OkStatus();
}

// Consumers: search as above; --order goes with --sort, ascending by default.
absl::Status ConsumersPrepare(Ctx& c, Message* request, Message* body) {
  if (c.args.Has("order") && !c.args.Has("sort")) return Usage("--order goes with --sort");
  auto* req = static_cast<v1::ListAudienceConsumersFromSpaceAndAudienceRequest*>(request);
  if (c.args.Has("sort") && !c.args.Has("order")) {
    req->mutable_sort()->set_direction(v1::SORT_DIRECTION_ASC);
  }
  return SearchPrepare(c, request, body);
}

const std::vector<Fill> kAudienceFills = {
    {"name", "name"},
    {"description", "description"},
    {"query", "definition.query"},
    {"external-ids", "options.filter_by_external_ids"},
    {"backfill-days", "options.backfill_event_data_days"},
    {"include-historical", "options.include_historical_data"},
};

std::vector<Fill> With(std::vector<Fill> fills, const std::vector<Fill>& more) {
  fills.insert(fills.end(), more.begin(), more.end());
  return fills;
}

const std::vector<Fill> kListFills = {
    {"search", "search.query"},
    {"search-type", "search.type", "AUDIENCE_SEARCH_TYPE_"},
    {"count", "pagination.count"},
    {"cursor", "pagination.cursor"},
};

}  // namespace

std::vector<Command> AudienceCommands() {
  const FlagUse kIdArg = {"id", "Audience id (or give it as the argument)."};
  return {
      Command("audiences list")
          .Synopsis("--space ID [--count N] [--cursor C | --all]")
          .Summary("List the audiences of a space: one page, or every page with --all.")
          .Description(
              "Table columns: ID, NAME, TYPE, ENABLED, STATUS, KEY. Without --all, a table ends "
              "with\nthe cursor of the next page on stderr; JSON/YAML carry it in "
              "pagination.next.")
          .Flags({{"space"},
                  {"count", "Page size, 1-200 (default: the API's)."},
                  {"cursor"},
                  {"all"},
                  {"search"},
                  {"search-type"},
                  {"include"},
                  {"file", "Proto3 JSON of a ListAudiencesRequest ('-' = stdin)."}})
          .Example("  audiencesctl audiences list --space spa_1 --count 50\n"
                   "  audiencesctl audiences list --space spa_1 --all --search buyers -o json")
          .Rpc("ListAudiences")
          .Fills(With(kListFills, {{"include", "include"}}))
          .Then(SearchPrepare)
          .Table(tables::Audiences)
          .Listing("audiences", "No audiences found in space {space}."),
      Command("audiences get")
          .Synopsis("--space ID --id ID")
          .Summary("Show one audience (with --include schedules, its schedules too).")
          .Flags({{"space"},
                  kIdArg,
                  {"include"},
                  {"file", "Proto3 JSON of a GetAudienceRequest ('-' = stdin)."}})
          .Example("  audiencesctl audiences get --space spa_1 --id \"$AUDIENCE_ID\" --include "
                   "schedules")
          .Rpc("GetAudience")
          .Ids({{"id", "id"}})
          .Fills({{"include", "include"}})
          .Table(tables::Audience),
      Command("audiences create")
          .Synopsis("--space ID --name NAME --query QUERY [--type TYPE]")
          .Summary("Create an audience.")
          .Description(
              "The body is a CreateAudienceInput: from -f (proto3 JSON), then the flags on top.\n"
              "--name and --query are required (here or in -f); --type defaults to users; "
              "linked\naudiences also need --target-entity.")
          .Flags({{"space"},
                  {"name"},
                  {"query"},
                  {"type"},
                  {"target-entity"},
                  {"description"},
                  {"enabled"},
                  {"disabled"},
                  {"external-ids"},
                  {"backfill-days"},
                  {"include-historical"},
                  {"file"}})
          .Example("  audiencesctl audiences create --space spa_1 --name Buyers \\\n"
                   "      --query \"event('Order Completed').count() >= 1\" --enabled\n"
                   "  printf '{\"name\":\"%s\",\"definition\":{\"query\":\"%s\"}}' VIPs "
                   "\"trait('vip') = "
                   "true\" |\n"
                   "      audiencesctl audiences create --space spa_1 -f -")
          .Rpc("CreateAudience", "audience")
          .Fills(With(kAudienceFills, {{"type", "audience_type", "AUDIENCE_TYPE_"},
                                       {"target-entity", "definition.target_entity"}}))
          .Required({"name", "definition.query"})
          .Then(CreatePrepare)
          .Table(tables::Audience),
      Command("audiences update")
          .Synopsis("--space ID --id ID [--name NAME] [--query QUERY] [--enabled=BOOL]")
          .Summary("Change an audience: only the fields given change.")
          .Description(
              "The body is an UpdateAudienceForSpaceInput: from -f (proto3 JSON), then the flags.")
          .Flags({{"space"},
                  kIdArg,
                  {"name"},
                  {"query"},
                  {"description"},
                  {"enabled"},
                  {"disabled"},
                  {"external-ids"},
                  {"backfill-days"},
                  {"include-historical"},
                  {"file"}})
          .Example(
              "  audiencesctl audiences update --space spa_1 --id \"$AUDIENCE_ID\" --name \"Big "
              "buyers\" --enabled=false")
          .Rpc("UpdateAudienceForSpace", "audience")
          .Ids({{"id", "id"}})
          .Fills(kAudienceFills)
          .Then(UpdatePrepare)
          .Table(tables::Audience),
      Command("audiences delete")
          .Synopsis("--space ID --id ID")
          .Summary("Remove an audience from its space.")
          .Flags({{"space"}, kIdArg})
          .Example("  audiencesctl audiences delete --space spa_1 --id \"$AUDIENCE_ID\"")
          .Rpc("RemoveAudienceFromSpace")
          .Ids({{"id", "id"}})
          .Table(tables::AudienceDeleted),
  };
}

std::vector<Command> ConsumerCommands() {
  return {
      Command("consumers list")
          .Synopsis("--space ID --audience ID [--all]")
          .Summary("List the audiences that reference (consume) an audience.")
          .Flags({{"space"},
                  {"audience", "Audience id (also --id, or the argument)."},
                  {"id", "Same as --audience."},
                  {"count", "Page size, 1-1000 (default: the API's)."},
                  {"cursor"},
                  {"all"},
                  {"search"},
                  {"search-type"},
                  {"sort"},
                  {"order"},
                  {"file", "Proto3 JSON of a ListAudienceConsumersFromSpaceAndAudienceRequest."}})
          .Example(
              "  audiencesctl consumers list --space spa_1 --audience \"$AUDIENCE_ID\" --sort name "
              "--order desc")
          .Rpc("ListAudienceConsumersFromSpaceAndAudience")
          .Ids({{"audience", "id", true, "id"}})
          .Fills(With(kListFills, {{"sort", "sort.field", "AUDIENCE_CONSUMERS_SORT_FIELD_"},
                                   {"order", "sort.direction", "SORT_DIRECTION_"}}))
          .Then(ConsumersPrepare)
          .Table(tables::Audiences)
          .Listing("audiences", "No audiences consume audience {id}."),
  };
}

}  // namespace audiencesctl

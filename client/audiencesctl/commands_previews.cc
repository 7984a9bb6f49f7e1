// The previews and runs commands: previews create (--wait polls until the preview is done) and
// previews get, runs force.
#include <iostream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "audiencesctl/command.h"
#include "audiencesctl/tables.h"
#include "segment/audiences/v1/audiences.pb.h"

namespace audiencesctl {
namespace {

namespace v1 = ::segment::audiences::v1;
namespace sa = ::segment_audiences;

std::string PreviewStatusName(v1::AudiencePreviewStatus status) {
  std::string name = v1::AudiencePreviewStatus_Name(status);
  return absl::StartsWith(name, "AUDIENCE_PREVIEW_STATUS_") ? name.substr(24) : name;
}

absl::Status CreatePrepare(Ctx& c, Message*, Message* body) {
  auto* p = static_cast<v1::CreateAudiencePreviewBetaInput*>(body);
  if (p->audience_type() == v1::AUDIENCE_TYPE_UNSPECIFIED) {
    p->set_audience_type(v1::AUDIENCE_TYPE_USERS);
  }
  if (!c.args.GetBool("wait") && (c.args.Has("wait-timeout") || c.args.Has("progress"))) {
    return Usage("--wait-timeout and --progress go with --wait");
  }
  const std::string progress = absl::AsciiStrToLower(c.args.Get("progress", "auto"));
  if (progress != "auto" && progress != "always" && progress != "never") {
    return Usage(absl::StrCat("--progress is auto, always or never, not '", c.args.Get("progress"),
                              "'", DidYouMean(progress, {"auto", "always", "never"})));
  }
  if (c.args.Has("wait-timeout")) {
    absl::StatusOr<absl::Duration> t =
        ParseDurationFlag("wait-timeout", c.args.Get("wait-timeout"));
    if (!t.ok()) return Usage(t.status().message());
  }
  return absl::OkStatus();
}

// "preview ID: STATUS (elapsed)"; on a terminal, the id is shortened so that the line fits.
std::string ProgressLine(const std::string& id, const v1::AudiencePreview& preview,
                         absl::Duration elapsed, bool tty) {
  const std::string tail =
      absl::StrCat(": ", PreviewStatusName(preview.status()), " (",
                   HumanDuration(absl::Trunc(elapsed, absl::Milliseconds(100))), ")");
  std::string shown = id;
  const size_t room = static_cast<size_t>(std::max(TerminalWidth() - 1, 40)) - tail.size() - 8;
  if (tty && shown.size() > room) {
    shown = absl::StrCat(shown.substr(0, room / 2 - 1), "...",
                         shown.substr(shown.size() - room / 2 + 2));
  }
  return absl::StrCat("preview ", shown, tail);
}

absl::Status Wait(Ctx& c, const v1::CreateAudiencePreviewRequest& req, const std::string& id) {
  const std::string progress_flag = absl::AsciiStrToLower(c.args.Get("progress", "auto"));
  const bool progress = progress_flag == "always" || (progress_flag == "auto" && c.err_tty);
  sa::WaitOptions wait;
  if (c.args.Has("wait-timeout"))
    wait.timeout = *ParseDurationFlag("wait-timeout", c.args.Get("wait-timeout"));
  bool shown = false;
  wait.on_poll = [&](const v1::AudiencePreview& preview, absl::Duration elapsed) {
    if (!progress) return;
    const std::string line = ProgressLine(id, preview, elapsed, c.err_tty);
    if (c.err_tty) {
      ShowStatusLine(line);
      shown = true;
    } else {
      std::cerr << line << "\n";
    }
  };
  v1::GetAudiencePreviewRequest get;
  get.set_space_id(req.space_id());
  get.set_id(id);
  absl::StatusOr<v1::AudiencePreview> done = c.client->WaitForAudiencePreview(get, wait, c.call);
  if (shown) std::cerr << "\n";
  if (!done.ok()) {
    if (done.status().code() == absl::StatusCode::kDeadlineExceeded) {
      c.hint = absl::StrCat("Check later with: audiencesctl previews get --space ", req.space_id(),
                            " --id ", id);
    }
    return done.status();
  }
  v1::GetAudiencePreviewResponse resp;
  *resp.mutable_audience_preview() = *done;
  Print(c, resp, Json::object(), tables::Preview);
  if (done->status() == v1::AUDIENCE_PREVIEW_STATUS_FAILED) {
    return absl::FailedPreconditionError(absl::StrCat(
        "preview ", id, " FAILED", done->has_failure_reason() ? ": " : "", done->failure_reason()));
  }
  return absl::OkStatus();
}

absl::Status PreviewsCreate(Ctx& c) {
  Message* body = nullptr;
  absl::StatusOr<std::unique_ptr<Message>> built = BuildRequest(c, &body);
  if (!built.ok()) return built.status();
  const auto& req = static_cast<const v1::CreateAudiencePreviewRequest&>(**built);
  v1::CreateAudiencePreviewResponse created;
  absl::Status s = CallRpc(c, "CreateAudiencePreview", req, &created);
  if (!s.ok()) return s;
  const std::string id = created.audience_preview().id();
  if (c.args.GetBool("wait")) return Wait(c, req, id);
  Print(c, created, Json::object(), tables::PreviewId);
  if (c.format == Format::kTable) {
    std::cerr << "Follow it with: audiencesctl previews get --space " << req.space_id() << " --id "
              << id << "  (or create with --wait)\n";
  }
  return absl::OkStatus();
}

}  // namespace

std::vector<Command> PreviewCommands() {
  Command create =
      Command("previews create")
          .Synopsis("--space ID --query QUERY [--type TYPE] [--wait]")
          .Summary("Start an audience preview; with --wait, poll until it is COMPLETED or FAILED.")
          .Description(
              "Without --wait, prints the preview id. With --wait, polls GetAudiencePreview "
              "(250ms,\n"
              "growing to 2s) showing progress on stderr when it is a terminal, then prints the\n"
              "preview; exit code 2 when it FAILED, 6 when --wait-timeout passes first.")
          .Flags({{"space"},
                  {"query"},
                  {"type"},
                  {"target-entity"},
                  {"external-ids"},
                  {"backfill-days"},
                  {"wait"},
                  {"wait-timeout"},
                  {"progress"},
                  {"file"}})
          .Example(
              "  audiencesctl previews create --space spa_1 --type linked --target-entity accounts "
              "\\\n"
              "      --query \"entity('accounts').count() >= 1\" --wait --wait-timeout 2m")
          .Rpc("CreateAudiencePreview", "preview")
          .Fills({{"query", "definition.query"},
                  {"target-entity", "definition.target_entity"},
                  {"type", "audience_type", "AUDIENCE_TYPE_"},
                  {"external-ids", "options.filter_by_external_ids"},
                  {"backfill-days", "options.backfill_event_data_days"}})
          .Required({"definition.query"})
          .Then(CreatePrepare);
  create.run = PreviewsCreate;
  return {
      create,
      Command("previews get")
          .Synopsis("--space ID --id PREVIEW")
          .Summary("Show a preview: status, size, results.")
          .Flags({{"space"}, {"id", "Preview id (or give it as the argument)."}})
          .Example("  audiencesctl previews get --space spa_1 --id \"$PREVIEW_ID\"")
          .Rpc("GetAudiencePreview")
          .Ids({{"id", "id"}})
          .Table(tables::Preview),
  };
}

std::vector<Command> RunCommands() {
  return {
      Command("runs force")
          .Synopsis("--space ID --audience ID")
          .Summary("Start a run of a LINKED audience now (ForceExecuteAudienceRun).")
          .Flags({{"space"},
                  {"audience", "Audience id (also --id, or the argument)."},
                  {"id", "Same as --audience."}})
          .Example("  audiencesctl runs force --space spa_1 --audience \"$AUDIENCE_ID\"")
          .Rpc("ForceExecuteAudienceRun")
          .Ids({{"audience", "audience_id", true, "id"}})
          .Table(tables::Run),
  };
}

}  // namespace audiencesctl

"""Each format's rendering of every event type, checked against what Slack, Teams and PagerDuty accept
(the wire-level fakes' own checks), and each format's reading of its receiver's answers."""

from __future__ import annotations

import json

import httpx
import pytest

from store.event_catalog import CATALOG
from tasks.webhooks.formats import pagerduty, slack, standard, teams
from tasks.webhooks.formats.alerts import alert_for
from tasks.webhooks.formats.base import Destination
from tests.fakes import pagerduty as pagerduty_fake
from tests.fakes import slack as slack_fake
from tests.fakes import teams as teams_fake

ROUTING_KEY = "R0UT1NGKEY0123456789abcdefABCDEF"
DESTINATION = Destination("wh_1", "alerts", {}, ROUTING_KEY, "https://modelpulse.example.com/")


def event(type_: str, data: dict, event_id: str = "evt_01jdx3k8v5c8m2y7q4n6t9w0ab") -> dict:
    return {
        "id": event_id,
        "type": type_,
        "timestamp": "2026-11-02T10:00:02.512Z",
        "organization_id": "acme",
        "project_id": "fraud-team",
        "data": data,
    }


EXAMPLES = [event(entry.type, entry.example) for entry in CATALOG]
HUGE = [
    # The largest data the API accepts, in the fields the formats show.
    event(
        "drift.detected",
        {
            "model": "m" * 200,
            "features": [{"feature": "f" * 200, "method": "psi", "value": 0.5, "threshold": 0.2}] * 1000,
        },
    ),
    event("recommendation.created", {"model": "m" * 200, "kind": "retrain", "reason": "r" * 2000, "details": {}}),
    event(
        "webhook.disabled",
        {
            "webhook_id": "wh_1",
            "name": "n" * 200,
            "format": "slack",
            "url": "https://x/" + "u" * 2000,
            "reason": "gone",
            "detail": "d" * 2000,
            "disabled_at": "2026-11-02T10:00:00Z",
        },
    ),
    event(
        "threshold.breached",
        {
            "model": "<@channel> & " + "m" * 180,
            "metric": "latency_ms.p95",
            "operator": ">",
            "threshold": 1e300,
            "value": -1.2345678e-300,
            "blob": "x" * 200_000,
        },
    ),
]


@pytest.mark.parametrize("payload", EXAMPLES + HUGE, ids=lambda p: p["type"])
def test_every_event_renders_as_a_message_slack_accepts(payload):
    message = json.loads(slack.render(payload, DESTINATION).body)
    assert slack_fake.problems(message) == []
    assert "\n" not in message["text"]
    assert message["text"].startswith(f"[{alert_for(payload, DESTINATION).label}] ")
    assert message["blocks"][0]["type"] == "header"


@pytest.mark.parametrize("payload", EXAMPLES + HUGE, ids=lambda p: p["type"])
def test_every_event_renders_as_a_card_teams_accepts(payload):
    message = json.loads(teams.render(payload, DESTINATION).body)
    assert teams_fake.problems(message) == []


@pytest.mark.parametrize("payload", EXAMPLES + HUGE, ids=lambda p: p["type"])
def test_every_event_renders_as_an_event_pagerduty_accepts(payload):
    sent = json.loads(pagerduty.render(payload, DESTINATION).body)
    assert pagerduty_fake.problems(sent, {ROUTING_KEY}) == []
    resolves = payload["type"] in ("threshold.resolved", "drift.resolved")
    assert sent["event_action"] == ("resolve" if resolves else "trigger")


def test_slack_message_says_severity_model_and_what_happened_with_a_link_back():
    breached = next(e for e in EXAMPLES if e["type"] == "threshold.breached")
    message = json.loads(slack.render(breached, DESTINATION).body)
    # Slack shows &gt; as ">": message text is escaped as Slack asks.
    assert message["text"] == "[ERROR] fraud: Threshold breached: latency_ms.p95 = 812.5 (&gt; 250)"
    fields = {f["text"].split("\n")[0]: f["text"].split("\n")[1] for f in message["blocks"][2]["fields"]}
    assert fields["*Model*"] == "fraud" and fields["*Threshold*"] == "&gt; 250"
    [button] = message["blocks"][-1]["elements"]
    assert (
        button["url"] == "https://modelpulse.example.com/organizations/acme/thresholds/thr_01jdx3k8v5c8m2y7q4n6t9w0ab"
    )


def test_without_a_public_url_there_is_no_link():
    breached = next(e for e in EXAMPLES if e["type"] == "threshold.breached")
    message = json.loads(slack.render(breached, Destination("wh_1")).body)
    assert [b["type"] for b in message["blocks"]] == ["header", "section", "section", "context"]
    card = json.loads(teams.render(breached, Destination("wh_1")).body)["attachments"][0]["content"]
    assert "actions" not in card


def test_slack_mrkdwn_control_characters_are_escaped():
    breached = HUGE[-1]
    message = json.loads(slack.render(breached, DESTINATION).body)
    assert "&lt;@channel&gt; &amp;" in json.dumps(message["blocks"][2])


def test_pagerduty_summary_is_cut_to_1024_characters_and_severity_comes_from_config_then_event():
    long = event("recommendation.created", {"model": "churn", "kind": "retrain", "reason": "r" * 2000})
    sent = json.loads(pagerduty.render(long, DESTINATION).body)
    assert len(sent["payload"]["summary"]) == 1024 and sent["payload"]["summary"].endswith("…")
    assert sent["payload"]["severity"] == "info"  # the type's default
    breached = next(e for e in EXAMPLES if e["type"] == "threshold.breached")
    assert json.loads(pagerduty.render(breached, DESTINATION).body)["payload"]["severity"] == "error"  # the rule's
    paging = Destination("wh_1", config={"severity": "critical", "source": "prod-eu"}, routing_key=ROUTING_KEY)
    sent = json.loads(pagerduty.render(breached, paging).body)
    assert (sent["payload"]["severity"], sent["payload"]["source"]) == ("critical", "prod-eu")
    assert sent["payload"]["custom_details"]["value"] == 812.5 and sent["routing_key"] == ROUTING_KEY


def test_one_episode_is_one_dedup_key():
    breached = event(
        "threshold.breached",
        {"model": "fraud", "metric": "m", "operator": ">", "threshold": 1, "value": 2},
        event_id="evt_breach",
    )
    resolved = event(
        "threshold.resolved",
        {"model": "fraud", "metric": "m", "value": 0, "episode_event_id": "evt_breach"},
        event_id="evt_resolve",
    )
    first = event("drift.detected", {"model": "churn", "episode_event_id": "evt_first"}, event_id="evt_first")
    again = event("drift.detected", {"model": "churn", "episode_event_id": "evt_first"}, event_id="evt_again")
    clean = event("drift.resolved", {"model": "churn", "episode_event_id": "evt_first"}, event_id="evt_clean")
    adhoc = event("drift.detected", {"model": "churn"}, event_id="evt_adhoc")
    keys = [json.loads(pagerduty.render(e, DESTINATION).body)["dedup_key"] for e in (breached, resolved)]
    assert keys == ["modelpulse-evt_breach"] * 2
    keys = [json.loads(pagerduty.render(e, DESTINATION).body)["dedup_key"] for e in (first, again, clean)]
    assert keys == ["modelpulse-evt_first"] * 3
    assert json.loads(pagerduty.render(adhoc, DESTINATION).body)["dedup_key"] == "modelpulse-evt_adhoc"


def test_standard_renders_the_event_as_it_is():
    payload = EXAMPLES[0]
    assert json.loads(standard.render(payload, DESTINATION).body) == payload
    assert standard.SIGNED and not (slack.SIGNED or teams.SIGNED or pagerduty.SIGNED)


@pytest.mark.parametrize(
    ("module", "status", "body", "outcome", "reason"),
    [
        (standard, 200, "", "succeeded", None),
        (standard, 410, "", "gone", "gone"),
        (standard, 404, "no_service", "failed", None),
        (standard, 503, "", "retry", None),
        (slack, 200, "ok", "succeeded", None),
        (slack, 404, "no_service", "gone", "no_service"),
        (slack, 410, "channel_is_archived", "gone", "channel_is_archived"),
        (slack, 404, "channel_not_found", "failed", None),
        (slack, 400, "invalid_payload", "failed", None),
        (slack, 403, "action_prohibited", "failed", None),
        (slack, 429, "rate_limited", "retry", None),
        (slack, 500, "internal_error", "retry", None),
        (teams, 202, "", "succeeded", None),
        (teams, 404, '{"error": {"code": "WorkflowNotFound", "message": "gone"}}', "gone", "workflow_not_found"),
        (teams, 404, "<html>not found</html>", "failed", None),
        (teams, 400, '{"error": {"code": "InvalidRequestContent", "message": "bad"}}', "failed", None),
        (teams, 429, '{"error": {"code": "WorkflowRequestsThrottled"}}', "retry", None),
        (pagerduty, 202, '{"status": "success"}', "succeeded", None),
        (
            pagerduty,
            400,
            '{"status": "invalid event", "message": "Event object is invalid", "errors": ["x"]}',
            "failed",
            None,
        ),
        (pagerduty, 429, '{"status": "throttle event"}', "retry", None),
        (pagerduty, 502, "bad gateway", "retry", None),
    ],
)
def test_each_format_reads_its_receivers_answers(module, status, body, outcome, reason):
    verdict = module.classify(status, body)
    assert (verdict.outcome, verdict.disable_reason) == (outcome, reason)
    if outcome != "succeeded" and module in (slack, pagerduty):  # their answers always carry a reason
        assert verdict.error and verdict.error.startswith(f"HTTP {status}: ")


def test_error_texts_quote_the_receivers_reason():
    assert slack.classify(400, "invalid_payload\n").error == "HTTP 400: invalid_payload"
    answer = '{"status": "invalid event", "message": "Event object is invalid", "errors": ["Invalid routing key"]}'
    assert pagerduty.classify(400, answer).error == "HTTP 400: Event object is invalid: Invalid routing key"
    assert "workflow was deleted" in teams.classify(404, '{"error": {"code": "WorkflowNotFound"}}').disable_detail


MARKDOWN = "**pwned** _x_ [click here](https://evil.example/) `rm -rf` ~~gone~~ back\\slash *"


def _card_texts(message: dict) -> list[str]:
    body = message["attachments"][0]["content"]["body"]
    texts = [element["text"] for element in body if element["type"] == "TextBlock"]
    return texts + [fact["value"] for element in body if element["type"] == "FactSet" for fact in element["facts"]]


@pytest.mark.parametrize(
    "payload",
    [
        event("threshold.breached", {"model": MARKDOWN, "metric": "# heading", "operator": ">", "threshold": 1}),
        event("recommendation.created", {"model": "- item\n> quote\n12. one", "kind": "retrain", "reason": MARKDOWN}),
    ],
    ids=["threshold", "recommendation"],
)
def test_teams_cards_show_event_text_as_written_not_as_markdown(payload):
    """Event text cannot bold, link or list anything on the card: Teams shows it character for character."""
    with teams_fake.TeamsFake() as fake:
        response = httpx.post(fake.workflow_url, content=teams.render(payload, DESTINATION).body)
        assert response.status_code == 202, response.text
    [message] = fake.messages
    texts = _card_texts(message)
    for text in texts:
        assert teams_fake.formatting(text) == [], text
    shown = "\n".join(teams_fake.shown(text) for text in texts)
    for value in payload["data"].values():
        if isinstance(value, str) and len(value) > 1:
            assert value in shown

"""Approved promotions: a challenger that beat the champion waits for a person's approval.

With PROMOTION_APPROVAL on, the train stage leaves a version that beats the champion as the
`challenger`, awaiting approval, with both versions' metrics on the same test rows
(`model.promote_if_better`). The `promote_challenger` DAG then asks a reviewer in Airflow's
Required Actions page (an `ApprovalOperator`):

- `promotion_request`: the request's subject and Markdown body: both versions' F1, precision
  and recall on the same rows, and how the two label the latest live tweets of the topic, with
  the tweets on which they disagree;
- `settle_approval`: Approve moves the `champion` alias (if the champion is still the one the
  challenger was compared with) and records who approved;
- `settle_refusal`: Reject, or no answer within PROMOTION_APPROVAL_HOURS, keeps the champion
  and records who rejected (or that nobody answered).

Each decision is a tag of the version in MLflow's registry and its `model_quality` row.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from ai_tweets.kafka import latest_values
from ai_tweets.markup import markdown_text
from ai_tweets.model_files import verified
from ai_tweets.schema import MalformedTweet, parse_message
from ai_tweets.storage import connect, ensure_tables
from ai_tweets.tables import MODEL_QUALITY
from stackbase.settings import Settings, load_settings

log = logging.getLogger(__name__)

APPROVE = "Approve"  # ApprovalOperator's option
LIVE_SAMPLE = 2_000  # the latest tweets of the topic both versions label
SHOWN = 10  # disagreements shown in the request
TEXT_SHOWN = 280


@dataclass(frozen=True)
class Disagreements:
    scored: int  # live tweets both versions labeled
    champion_only: int  # called AI by the champion alone
    challenger_only: int  # called AI by the challenger alone
    examples: list[tuple[float, float, str]]  # (champion's P(AI), challenger's, text), most apart first

    @property
    def count(self) -> int:
        return self.champion_only + self.challenger_only


def live_disagreements(settings: Settings, champion: str, challenger: str, topic: str | None = None,
                       sample: int = LIVE_SAMPLE, shown: int = SHOWN) -> Disagreements:
    """How two registered versions label the latest `sample` tweets of `topic` (default the
    live topic), each at its own threshold; both loaded from checked copies."""
    from ai_tweets import model as classifier

    texts = []
    for value in latest_values(settings, topic or settings.tweets_topic, sample):
        try:
            texts.append(parse_message(value).text)
        except MalformedTweet:
            continue
    if not texts:
        return Disagreements(0, 0, 0, [])
    labeled = {}
    for version in (champion, challenger):
        with verified(settings, f"models:/{settings.model_name}/{version}") as local:
            labeled[version] = classifier.label_texts(classifier.load_classifier(local), texts)
    (p_old, old), (p_new, new) = labeled[champion], labeled[challenger]
    apart = sorted((index for index in range(len(texts)) if old[index] != new[index]),
                   key=lambda index: -abs(p_new[index] - p_old[index]))
    return Disagreements(scored=len(texts), champion_only=int(((old == 1) & (new == 0)).sum()),
                         challenger_only=int(((old == 0) & (new == 1)).sum()),
                         examples=[(float(p_old[i]), float(p_new[i]), texts[i]) for i in apart[:shown]])


def request_body(model_name: str, comparison: dict[str, Any], found: Disagreements, topic: str,
                 hours: int) -> str:
    champion, challenger = comparison["champion"], comparison["challenger"]
    rows = comparison.get("rows")
    lines = [f"Version **{challenger['version']}** of `{model_name}` beat the champion, version "
             f"**{champion['version']}**, on the same {rows or ''} test tweets "
             f"({comparison.get('judged_on', '?')} labels). Approve to make it the champion: the "
             f"classify stream then scores the live tweets with it. Reject, or no answer within {hours} h, "
             f"keeps version {champion['version']}.", "",
             f"| on the same {comparison.get('judged_on', '?')}-labeled test rows | champion "
             f"v{champion['version']} | challenger v{challenger['version']} |", "|---|---|---|"]
    for metric in ("f1", "precision", "recall"):
        if metric in champion or metric in challenger:
            lines.append(f"| {metric} | {_number(champion.get(metric))} | {_number(challenger.get(metric))} |")
    lines.append("")
    if not found.scored:
        lines.append(f"No live tweets in `{topic}` to compare them on.")
        return "\n".join(lines)
    lines.append(f"**On the latest {found.scored:,} live tweets** of `{topic}` they disagree on {found.count:,} "
                 f"({found.count / found.scored:.1%}): the challenger alone calls {found.challenger_only:,} "
                 f"of them AI, the champion alone {found.champion_only:,}.")
    if found.examples:
        lines += ["", "| P(AI) champion | P(AI) challenger | tweet |", "|---|---|---|"]
        lines += [f"| {old:.2f} | {new:.2f} | {markdown_text(text, TEXT_SHOWN)} |" for old, new, text in found.examples]
    return "\n".join(lines)


def _number(value: Any) -> str:
    return "–" if value is None else f"{float(value):.3f}"


def promotion_request(model_version: int | str | None = None, topic: str | None = None,
                      sample: int | str = LIVE_SAMPLE) -> list[dict[str, Any]]:
    """The version awaiting approval (`model_version`, else the `challenger`) and, in `kwargs`,
    its request: the keyword arguments of one ApprovalOperator. A list (mapped over, with
    `approval_kwargs`), empty (no request) when no version waits."""
    from mlflow import MlflowClient

    from ai_tweets import model as classifier

    settings = load_settings()
    client = MlflowClient(settings.mlflow_uri())
    wanted = str(model_version).strip() if model_version not in (None, "", 0, "0") else None
    pending = classifier.awaiting_approval(client, settings.model_name, wanted)
    if pending is None:
        log.info("no version of %s waits for an approval", settings.model_name)
        return []
    comparison = classifier.comparison_of(pending)
    champion = comparison["champion"]["version"]
    topic = topic or settings.tweets_topic
    found = live_disagreements(settings, champion, pending.version, topic, int(sample))
    log.info("version %s vs champion %s: %d of %d live tweets labeled differently", pending.version, champion,
             found.count, found.scored)
    hours = settings.promotion_approval_hours
    return [{"version": str(pending.version),
             "kwargs": {"subject": f"Promote version {pending.version} of {settings.model_name} to champion?",
                        "body": request_body(settings.model_name, comparison, found, topic, hours),
                        "response_timeout": timedelta(hours=hours)}}]


def approval_kwargs(request: dict[str, Any]) -> dict[str, Any]:
    """The ApprovalOperator's keyword arguments of one request."""
    return request["kwargs"]


def _reviewer(answer: dict[str, Any] | None) -> str | None:
    person = (answer or {}).get("responded_by_user") or {}
    return person.get("name") or person.get("id")


def settle_approval(requests: list[dict[str, Any]], answers: Any) -> dict[str, Any]:
    """If Approve was chosen, the requested version becomes the champion (StalePromotion, not
    retried, if the champion changed since the comparison); else nothing happens here."""
    from mlflow import MlflowClient

    from ai_tweets import model as classifier

    version = requests[0]["version"]  # one request per run
    answer = answers[0]  # by index (see review.settle_answers)
    if APPROVE not in ((answer or {}).get("chosen_options") or []):
        return {"promoted": None, "new_version": version, "reason": "not approved"}
    settings = load_settings()
    decision = classifier.approve_promotion(MlflowClient(settings.mlflow_uri()), settings.model_name, version,
                                            str(_reviewer(answer)))
    _record_quality(settings, version, True, decision["reason"])
    log.info("%s version %s is the champion: %s", settings.model_name, version, decision["reason"])
    return decision


def settle_refusal(requests: list[dict[str, Any]], answer: dict[str, Any] | None) -> dict[str, Any]:
    """Reject was chosen for the requested version, or nobody answered in time: the champion stays.
    Nothing to do when no version waited, when Approve was chosen, or without an answer (the
    approval task failed: the version keeps waiting for the next run)."""
    from mlflow import MlflowClient

    from ai_tweets import model as classifier

    if not requests:
        return {"promoted": None, "reason": "no version waited for an approval"}
    version = requests[0]["version"]
    chosen = (answer or {}).get("chosen_options") or []
    if answer is None or APPROVE in chosen:
        return {"promoted": None, "new_version": version,
                "reason": "approved" if answer else "no answer recorded: the version still waits"}
    settings = load_settings()
    client = MlflowClient(settings.mlflow_uri())
    if classifier.awaiting_approval(client, settings.model_name, version) is None:
        return {"promoted": None, "new_version": version, "reason": "settled already"}
    decision = classifier.decline_promotion(client, settings.model_name, version, _reviewer(answer))
    _record_quality(settings, version, False, decision["reason"])
    log.info("%s version %s stays the challenger: %s", settings.model_name, version, decision["reason"])
    return decision


def _record_quality(settings: Settings, version: str, promoted: bool, reason: str) -> None:
    """The decision on the version's `model_quality` row (what the dashboard shows)."""
    with connect(settings) as conn:
        ensure_tables(conn, MODEL_QUALITY)
        conn.execute("UPDATE model_quality SET promoted = %s, decision = decision || '; ' || %s "
                     "WHERE model_name = %s AND model_version = %s", (promoted, reason, settings.model_name, version))
        conn.commit()

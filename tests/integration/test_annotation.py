"""Annotate on the real stack: Label Studio project bootstrap, push most uncertain first, pull
gold labels (edits, skips), never a tweet twice (crash, Label Studio down), and a screenshot of
the labeling screen in headless Chromium.

Small split tables of a random dataset version are filled directly with generated tweets and
seeded weak probabilities, so no Spark is needed. The tests run in file order and share them.
"""

from __future__ import annotations

import random
import time
import uuid
from dataclasses import dataclass

import pytest
from browser_helpers import headless_chromium
from conftest import ROOT, stack
from psycopg import sql
from psycopg.types.json import Jsonb

from ai_tweets import annotation
from ai_tweets.annotation import LabelStudioUnavailable, label_studio_client, uncertainty
from ai_tweets.dataset import ensure_split_table
from ai_tweets.generator import generate
from ai_tweets.retrying import Backoff
from ai_tweets.schema import normalize
from ai_tweets.storage import connect
from ai_tweets.tables import ABSTAIN, AI, NOT_AI, identifier, split_table_name
from stackbase.settings import Settings, environment, load_settings

pytestmark = pytest.mark.usefixtures("local_stack")

SIZES = {"dev": 20, "test": 20, "train": 40}
SCREENSHOT = ROOT / ".local" / "screenshots" / "label_studio_task.png"


@dataclass
class Env:
    settings: Settings
    title: str
    client: object
    project_id: int | None = None

    def push(self, **kwargs) -> dict:
        """A push ranked by the weak labels over every split, unless the test says otherwise."""
        kwargs.setdefault("strategy", "weak")
        kwargs.setdefault("test_share", 0.0)
        return annotation.push_uncertain_tasks(self.settings, title=self.title, **kwargs)

    def pull(self, **kwargs) -> dict:
        return annotation.pull_annotations(self.settings, title=self.title, **kwargs)

    def query(self, query: str, params: tuple = ()) -> list[tuple]:
        """`query` over all three split tables as one relation `t` (with a `split` column)."""
        union = sql.SQL(" UNION ALL ").join(
            sql.SQL("SELECT *, {s} AS split FROM {t}").format(s=sql.Literal(s), t=identifier(self.table(s)))
            for s in SIZES)
        with connect(self.settings) as conn:
            return conn.execute(sql.SQL("WITH t AS ({union}) ").format(union=union) + sql.SQL(query),
                                params).fetchall()

    def table(self, split: str) -> str:
        return split_table_name(split, self.settings)

    def tasks(self, fields: str = "all") -> list:
        return list(self.client.tasks.list(project=self.project_id, fields=fields, page_size=500))

    def pushed(self) -> dict[int, int]:
        """tweet_id → annotation_task_id of every pushed row."""
        return dict(self.query("SELECT tweet_id, annotation_task_id FROM t WHERE annotation_task_id IS NOT NULL"))

    def assert_no_duplicates(self) -> None:
        tasks = self.tasks(fields="task_only")
        tweet_ids = [int(task.data["tweet_id"]) for task in tasks]
        assert len(tweet_ids) == len(set(tweet_ids)), "a tweet was pushed twice"
        assert self.pushed() == {int(task.data["tweet_id"]): task.id for task in tasks}, \
            "every task is recorded on its tweet's row, and nothing else is"


def fill_splits(settings: Settings, seed: int = 7) -> None:
    """Generated tweets in the three split tables, with seeded weak labels; one abstain."""
    rng = random.Random(seed)
    tweets = iter(normalize(item.payload) for item in generate(sum(SIZES.values()), seed=seed))
    with connect(settings) as conn:
        for split, size in SIZES.items():
            ensure_split_table(conn, split_table_name(split, settings))
            rows = []
            for i in range(size):
                tweet = next(tweets)
                prob = round(rng.random(), 4)
                label = ABSTAIN if (split, i) == ("dev", 0) else AI if prob >= 0.5 else NOT_AI
                rows.append((tweet.id, tweet.text, tweet.created_at, tweet.author_handle, tweet.lang,
                             tweet.is_retweet, tweet.is_reply, list(tweet.hashtags), list(tweet.mentions),
                             Jsonb([{"url": u.url, "expanded_url": u.expanded_url, "display_url": u.display_url}
                                    for u in tweet.urls]), rng.random(), label, prob))
            conn.cursor().executemany(sql.SQL(
                "INSERT INTO {t} (tweet_id, text, created_at, author_handle, lang, is_retweet, is_reply, hashtags, "
                "mentions, urls, split_rank, weak_label, weak_prob) VALUES ({values})").format(
                    t=identifier(split_table_name(split, settings)),
                    values=sql.SQL(", ").join([sql.Placeholder()] * 13)), rows)


@pytest.fixture(scope="module")
def env(local_stack):
    version = random.randint(100_000, 999_999)
    settings = load_settings({**environment(ROOT / ".env"), "DATASET_VERSION": str(version)})
    fill_splits(settings)
    created = Env(settings, f"AI tweets v{version} test-{uuid.uuid4().hex[:6]}", label_studio_client(settings))
    yield created
    if created.project_id is not None:
        created.client.projects.delete(id=created.project_id)
    with connect(settings) as conn:
        for split in SIZES:
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {t}").format(t=identifier(split_table_name(split, settings))))


def test_bootstrap_creates_the_project_once(env):
    env.project_id = annotation.ensure_project(env.client, env.title, "label-model-v1")
    assert annotation.ensure_project(env.client, env.title, "label-model-v1") == env.project_id
    same_title = [p.id for p in env.client.projects.list(title=env.title) if p.title == env.title]
    assert same_title == [env.project_id]
    project = env.client.projects.get(id=env.project_id)
    assert project.label_config.strip() == annotation.label_config().strip()
    assert project.show_instruction and "Label 0 for everything else" in project.expert_instruction, \
        "the labeling guide is the project's instructions"
    assert "<li>" in project.expert_instruction, "as HTML"


def test_push_sends_the_most_uncertain_first_with_predictions(env):
    report = env.push(batch_size=10)
    assert report["pushed"] == 10 and report["project_id"] == env.project_id and report["strategy"] == "weak"
    expected = env.query("SELECT tweet_id, weak_prob, weak_label FROM t ORDER BY abs(weak_prob - 0.5), tweet_id "
                         "LIMIT 10")
    assert set(env.pushed()) == {row[0] for row in expected}
    env.assert_no_duplicates()

    tasks = sorted(env.tasks(), key=lambda task: task.id)  # imported in order: task ids follow uncertainty
    assert [int(task.data["tweet_id"]) for task in tasks] == [row[0] for row in expected]
    pushed_probs = [task.data["weak_prob"] for task in tasks]
    assert pushed_probs == sorted(pushed_probs, key=lambda p: abs(p - 0.5))
    for task, (_, weak_prob, weak_label) in zip(tasks, expected, strict=True):
        [prediction] = task.predictions
        assert prediction.model_version == f"label-model-v{env.settings.dataset_version}"
        assert prediction.score == pytest.approx(uncertainty(weak_prob), abs=1e-6)
        choices = [r["value"]["choices"] for r in prediction.result]
        assert choices == ([] if weak_label == ABSTAIN else [[annotation.CHOICES[weak_label]]])
        assert task.data["split"] in SIZES and task.data["text"] and task.data["author"].startswith(("@", "("))
        assert {"links", "hashtags", "urls", "weak"} <= set(task.data)
    scores = [task.predictions[0].score for task in tasks]
    assert scores == sorted(scores, reverse=True), "the Data Manager sorts by score, most uncertain first"
    pushed_at = env.query("SELECT min(annotation_pushed_at) IS NOT NULL FROM t WHERE annotation_task_id IS NOT NULL")
    assert pushed_at == [(True,)]


def test_pull_brings_annotations_edits_and_skips_into_gold_labels(env):
    tasks = sorted(env.tasks(), key=lambda task: task.id)
    first, second, skipped = tasks[0], tasks[1], tasks[2]
    labeled = {first.id: "AI", second.id: "Not AI"}
    created = {task_id: env.client.annotations.create(id=task_id, result=[annotation._choice(annotation.LABELS[c])])
               for task_id, c in labeled.items()}
    env.client.annotations.create(id=skipped.id, result=[], was_cancelled=True)

    report = env.pull()
    assert (report["new"], report["changed"], report["skipped"], report["written"]) == (2, 0, 1, 2)
    assert report["pending"] == len(tasks) - 3
    email = env.client.users.whoami().email
    gold = {row[0]: row[1:] for row in env.query(
        "SELECT tweet_id, gold_label, gold_labeled_by, gold_labeled_at FROM t WHERE gold_label IS NOT NULL")}
    assert gold == {int(first.data["tweet_id"]): (AI, email, created[first.id].updated_at),
                    int(second.data["tweet_id"]): (NOT_AI, email, created[second.id].updated_at)}
    assert env.query("SELECT gold_label FROM t WHERE tweet_id = %s", (int(skipped.data["tweet_id"]),)) == [(None,)]

    again = env.pull()
    assert (again["new"], again["changed"], again["unchanged"], again["written"]) == (0, 0, 2, 0)

    edited = env.client.annotations.update(id=created[first.id].id, result=[annotation._choice(NOT_AI)])
    third = env.pull()
    assert (third["new"], third["changed"], third["unchanged"], third["written"]) == (0, 1, 1, 1)
    assert env.query("SELECT gold_label, gold_labeled_at FROM t WHERE tweet_id = %s",
                     (int(first.data["tweet_id"]),)) == [(NOT_AI, edited.updated_at)]
    assert env.pull()["written"] == 0


def test_push_again_never_repushes_and_tops_up_to_max_pending(env):
    before = env.pushed()
    report = env.push(batch_size=5)
    assert report["pushed"] == 5 and report["reconciled"] == 0
    after = env.pushed()
    assert len(after) == 15 and set(before) < set(after)
    env.assert_no_duplicates()
    # 15 tasks, 3 of them annotated or skipped: 12 pending; top up to 14 → 2 more, then none.
    assert env.push(batch_size=10, max_pending=14)["pushed"] == 2
    assert env.push(batch_size=10, max_pending=14)["pushed"] == 0
    env.assert_no_duplicates()


def test_a_crash_between_import_and_db_write_does_not_duplicate(env, monkeypatch):
    record = annotation._record_pushed
    calls = []

    def crash_after_import(conn, settings, tasks):
        calls.append(1)
        if len(calls) == 2:  # the first call reconciles; the second records the import
            raise RuntimeError("simulated crash after the import")
        return record(conn, settings, tasks)

    monkeypatch.setattr(annotation, "_record_pushed", crash_after_import)
    before = env.pushed()
    with pytest.raises(RuntimeError, match="simulated crash"):
        env.push(batch_size=4)
    monkeypatch.undo()
    assert env.pushed() == before, "the crash left the new tasks unrecorded"
    assert len(env.tasks(fields="task_only")) == len(before) + 4

    report = env.push(batch_size=4)
    assert report["reconciled"] == 4 and report["pushed"] == 4
    assert len(env.pushed()) == len(before) + 8
    env.assert_no_duplicates()


def test_model_strategy_ranks_by_the_models_own_threshold_with_a_share_from_test(env):
    from ai_tweets.model import load_classifier, predict_texts
    from ai_tweets_devkit.models import register_model

    model_name = f"ai-tweet-classifier-annotate-{uuid.uuid4().hex[:6]}"
    scored = load_settings({**environment(ROOT / ".env"), "DATASET_VERSION": str(env.settings.dataset_version),
                            "MODEL_NAME": model_name})
    register_model(scored, seed=5, epochs=2)
    candidates = dict(env.query("SELECT tweet_id, split FROM t "
                                "WHERE annotation_task_id IS NULL AND gold_label IS NULL"))
    report = annotation.push_uncertain_tasks(scored, title=env.title, batch_size=8, strategy="model", test_share=0.25)
    assert report["strategy"] == "model" and report["pushed"] == 8 and report["pushed_test"] >= 2
    assert report["model_uri"] == f"models:/{model_name}@champion"
    loaded = load_classifier(report["model_uri"], scored.mlflow_uri())
    threshold = loaded.unwrap_python_model().threshold
    assert report["threshold"] == pytest.approx(threshold)
    texts = dict(env.query("SELECT tweet_id, text FROM t WHERE tweet_id = ANY(%s)", (list(candidates),)))
    ids = list(candidates)
    probability = dict(zip(ids, predict_texts(loaded, [texts[i] for i in ids]), strict=True))
    new = {int(t.data["tweet_id"]): t for t in env.tasks() if int(t.data["tweet_id"]) in candidates}
    assert len(new) == 8
    def nearest(pool: list[int], count: int) -> list[int]:
        return sorted(pool, key=lambda i: (abs(probability[i] - threshold), i))[:count]

    reserved = nearest([i for i in ids if candidates[i] == "test"], 2)
    assert set(new) == set(reserved) | set(nearest([i for i in ids if i not in reserved], 6)), \
        "two places for the test split's most uncertain, six for the most uncertain of all"
    for tweet_id, task in new.items():
        assert task.predictions[0].score == pytest.approx(uncertainty(probability[tweet_id], threshold), abs=1e-6)

    no_model = load_settings({**environment(ROOT / ".env"), "DATASET_VERSION": str(env.settings.dataset_version),
                              "MODEL_NAME": f"no-such-model-{uuid.uuid4().hex[:6]}"})
    fallback = annotation.push_uncertain_tasks(no_model, title=env.title, batch_size=2, strategy="model",
                                               test_share=0.0)
    assert fallback["strategy"] == "weak" and fallback["pushed"] == 2
    env.assert_no_duplicates()


def test_disagreement_strategy_pushes_what_champion_and_challenger_label_differently_first(env):
    from mlflow import MlflowClient

    from ai_tweets.model import load_classifier, predict_texts
    from ai_tweets_devkit.models import register_model

    model_name = f"ai-tweet-classifier-disagree-{uuid.uuid4().hex[:6]}"
    scored = load_settings({**environment(ROOT / ".env"), "DATASET_VERSION": str(env.settings.dataset_version),
                            "MODEL_NAME": model_name})
    champion = register_model(scored, seed=5, epochs=2)
    report = annotation.push_uncertain_tasks(scored, title=env.title, batch_size=3, strategy="disagreement",
                                             test_share=0.0)
    assert report["strategy"] == "disagreement: model vs weak labels" and report["pushed"] == 3, \
        "without a challenger, the champion is held against the weak labels"
    challenger = register_model(scored, seed=6, epochs=1, champion=False)
    MlflowClient(scored.mlflow_uri()).set_registered_model_alias(model_name, "challenger", challenger)
    candidates = [row[0] for row in env.query("SELECT tweet_id FROM t WHERE annotation_task_id IS NULL "
                                              "AND gold_label IS NULL")]
    report = annotation.push_uncertain_tasks(scored, title=env.title, batch_size=6, strategy="disagreement",
                                             test_share=0.0)
    assert report["strategy"] == "disagreement: model vs model" and report["pushed"] == 6
    assert (report["model_uri"], report["other_uri"]) == (f"models:/{model_name}@champion",
                                                          f"models:/{model_name}/{challenger}")
    texts = dict(env.query("SELECT tweet_id, text FROM t WHERE tweet_id = ANY(%s)", (candidates,)))
    judged = {}
    for version in (champion, challenger):
        loaded = load_classifier(f"models:/{model_name}/{version}", scored.mlflow_uri())
        judged[version] = (dict(zip(candidates, predict_texts(loaded, [texts[i] for i in candidates]), strict=True)),
                           loaded.unwrap_python_model().threshold)
    (ours, our_threshold), (theirs, their_threshold) = judged[champion], judged[challenger]

    def key(i: int) -> tuple:
        agree = (ours[i] >= our_threshold) == (theirs[i] >= their_threshold)
        return agree, -abs(ours[i] - theirs[i]), i

    new = {int(t.data["tweet_id"]): t for t in env.tasks() if int(t.data["tweet_id"]) in candidates}
    assert set(new) == set(sorted(candidates, key=key)[:6]), "labeled differently first, then the most apart"
    for tweet_id, task in new.items():
        assert task.predictions[0].score == pytest.approx(abs(ours[tweet_id] - theirs[tweet_id]), abs=1e-5)
    env.assert_no_duplicates()


def test_random_strategy_follows_a_seeded_order_over_all_splits(env):
    """The md5 of the tweet id, not split_rank: the splits are cut from split_rank's order, so
    that order would label the test split first and leave training without gold labels."""
    expected = env.query("SELECT tweet_id FROM t WHERE annotation_task_id IS NULL AND gold_label IS NULL "
                         "ORDER BY md5(tweet_id::text), tweet_id LIMIT 12")
    before = set(env.pushed())
    assert env.push(batch_size=12, strategy="random")["pushed"] == 12
    assert set(env.pushed()) - before == {row[0] for row in expected}
    splits = {split for (split,) in env.query("SELECT DISTINCT split FROM t WHERE tweet_id = ANY(%s)",
                                              ([row[0] for row in expected],))}
    assert len(splits) > 1, "a random batch is not one split's"
    env.assert_no_duplicates()


def test_label_studio_down_fails_clearly_and_resumes_without_duplicates(env):
    before = env.query("SELECT tweet_id, annotation_task_id, annotation_pushed_at, gold_label FROM t ORDER BY 1")
    sleeps: list[float] = []
    stack("down", "label-studio")
    try:
        began = time.monotonic()
        with pytest.raises(LabelStudioUnavailable) as failure:
            env.push(batch_size=5, wait=Backoff(budget=0.36, first=0.05, sleep=sleeps.append))
        assert time.monotonic() - began < 30
        message = str(failure.value)
        assert env.settings.label_studio_url in message and "not answering" in message
        assert "make up SERVICES=label-studio" in message
        assert sleeps == [0.05, 0.1, 0.2], "exponential backoff between the attempts"
        with pytest.raises(LabelStudioUnavailable):
            env.pull(wait=Backoff(budget=0.01, first=0.01))
        after = env.query("SELECT tweet_id, annotation_task_id, annotation_pushed_at, gold_label FROM t ORDER BY 1")
        assert after == before, "nothing half-written in Postgres"
    finally:
        stack("up", "label-studio")
    count = len(env.pushed())
    assert env.push(batch_size=5)["pushed"] == 5
    assert len(env.pushed()) == count + 5
    env.assert_no_duplicates()
    assert env.pull()["written"] == 0


def test_screenshot_of_the_labeling_screen(env, tmp_path):
    from PIL import Image, ImageStat
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    with headless_chromium(tmp_path / "chromium", 1440, 1000, install_missing=True) as driver:
        unlabeled = [t for t in env.tasks() if t.predictions and t.predictions[0].result and not t.annotations]
        task = min(unlabeled, key=lambda t: (not t.data["urls"], t.data["hashtags"].startswith("("), t.id))
        secrets = environment(ROOT / ".env")
        wait = WebDriverWait(driver, 60)
        driver.get(f"{env.settings.label_studio_url}/user/login/")
        driver.find_element(By.NAME, "email").send_keys(secrets["LABEL_STUDIO_USERNAME"])
        driver.find_element(By.NAME, "password").send_keys(secrets["LABEL_STUDIO_PASSWORD"])
        driver.find_element(By.CSS_SELECTOR, "form button[type=submit], form input[type=submit]").click()
        wait.until(lambda d: "/user/login" not in d.current_url)
        driver.get(f"{env.settings.label_studio_url}/projects/{env.project_id}/data?task={task.id}")
        snippet = task.data["text"].split("\n")[0][:40]
        wait.until(lambda d: d.execute_script("return document.body.innerText.includes(arguments[0]) && "
                                              "document.body.innerText.includes('Weak label:')", snippet))
        choice = task.predictions[0].result[0]["value"]["choices"][0]
        wait.until(lambda d: d.execute_script(
            "return [...document.querySelectorAll('input:checked')].some(i => "
            "(i.closest('label') || i.parentElement).innerText.includes(arguments[0]))", choice))
        time.sleep(1)  # let fonts and layout settle
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        assert driver.save_screenshot(str(SCREENSHOT))
    assert SCREENSHOT.stat().st_size > 30_000
    with Image.open(SCREENSHOT) as image:
        assert image.size[0] >= 1000
        assert max(ImageStat.Stat(image.convert("L")).stddev) > 20, "the screenshot is blank"
        assert len(image.convert("L").getcolors(maxcolors=1 << 16) or range(1 << 16)) > 50


def test_sign_up_needs_the_invite_link_and_only_listed_annotators_make_gold(env):
    """Open sign-up is closed (anyone could otherwise label, and every label becomes gold); a
    person joins through the owner's invite link, and with LABEL_STUDIO_ANNOTATORS set only the
    listed people's annotations count."""
    import dataclasses
    import re

    import requests

    from ai_tweets.quality import _sign_up

    url = env.settings.label_studio_url
    stranger = f"stranger-{uuid.uuid4().hex[:8]}@example.org"
    with requests.Session() as session:
        page = session.get(f"{url}/user/signup/", timeout=30)
        csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
        refused = session.post(f"{url}/user/signup/", timeout=30, allow_redirects=False,
                               data={"email": stranger, "password": "a-long-password-1",
                                     "csrfmiddlewaretoken": csrf.group(1) if csrf else ""},
                               headers={"Referer": f"{url}/user/signup/"})
    assert refused.status_code == 403, refused.status_code
    assert stranger not in {user.email for user in env.client.users.list()}

    invited = f"invited-{uuid.uuid4().hex[:8]}@example.org"
    token = _sign_up(env.settings, invited, uuid.uuid4().hex)
    as_invited = annotation.label_studio_client(dataclasses.replace(env.settings, label_studio_api_key=token))
    task = next(task for task in sorted(env.tasks(), key=lambda task: task.id) if not task.annotations)
    as_invited.annotations.create(id=task.id, result=[annotation._choice(AI)])
    owner = env.client.users.whoami().email
    only_owner = dataclasses.replace(env.settings, label_studio_annotators=frozenset({owner.lower()}))
    report = annotation.pull_annotations(only_owner, title=env.title)
    assert report["ignored"] == 1 and report["written"] == 0
    assert env.query("SELECT gold_label FROM t WHERE tweet_id = %s", (int(task.data["tweet_id"]),)) == [(None,)]
    report = env.pull()  # no list: every member's annotations count
    assert report["new"] == 1 and report["ignored"] == 0
    assert env.query("SELECT gold_labeled_by FROM t WHERE tweet_id = %s", (int(task.data["tweet_id"]),)) == [
        (invited,)]

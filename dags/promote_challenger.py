"""
### Promote the challenger

With `PROMOTION_APPROVAL` on, a trained version that beats the champion waits for a person
(the `challenger_model` Asset from `train_model` starts this DAG; a manual run takes a
version). `request` compares the two versions: their F1, precision and recall on the same
test rows, and how each labels the latest live tweets of the topic, with the tweets on which
they disagree. `approve` asks a reviewer in Airflow's **Required Actions** page to approve or
reject. On **Approve**, `promote` moves the `champion` alias (if the champion is still the one
compared with) and updates the `champion_model` Asset, which restarts classification with it.
On **Reject**, or with no answer within `PROMOTION_APPROVAL_HOURS`, `keep_champion` records
that the champion stays. Each decision, and who made it, is a tag of the version in MLflow and
its `model_quality` row. Logic: `ai_tweets.promotion`.
"""

from airflow.providers.standard.operators.hitl import ApprovalOperator
from airflow.sdk import Param, dag, task
from airflow.sdk.exceptions import AirflowSkipException
from airflow.task.trigger_rule import TriggerRule

from ai_tweets.assets import CHALLENGER_MODEL, CHAMPION_MODEL
from ai_tweets.dag_support import fails_fast, pipeline_dag, stage_task
from ai_tweets.promotion import LIVE_SAMPLE, approval_kwargs, promotion_request, settle_approval, settle_refusal


@dag(
    schedule=[CHALLENGER_MODEL],
    **pipeline_dag(
        __doc__,
        tags=["train", "mlflow", "review"],
        render_template_as_native_obj=True,
        params={
            "model_version": Param(0, type="integer", minimum=0,
                                   description="the version to decide on (0: the challenger awaiting approval)"),
            "topic": Param("", type="string", description="the live tweets to compare on (empty: TWEETS_TOPIC)"),
            "sample": Param(LIVE_SAMPLE, type="integer", minimum=1, maximum=50_000,
                            description="how many of the latest live tweets both versions label"),
        },
    ),
)
def promote_challenger():
    request = stage_task(promotion_request, task_id="request")(
        model_version="{{ params.model_version }}", topic="{{ params.topic }}", sample="{{ params.sample }}")
    # No request (nothing waits): no approval task. Unanswered in time: the default, Reject.
    approve = ApprovalOperator.partial(task_id="approve", defaults=["Reject"]).expand_kwargs(
        request.map(approval_kwargs))

    @task(outlets=[CHAMPION_MODEL])
    def promote(requests: list, answers, outlet_events=None) -> dict:
        """Acts on Approve only (the answer is checked here: a mapped approval's Reject does not
        skip what follows it on Airflow 3.3)."""
        decision = fails_fast(settle_approval)(requests, answers)
        if not decision["promoted"]:
            raise AirflowSkipException(decision["reason"])
        outlet_events[CHAMPION_MODEL].extra = {"version": decision["new_version"]}
        return decision

    @task(trigger_rule=TriggerRule.ALL_DONE)
    def keep_champion(requests: list, ti=None) -> dict:
        """Records a Reject or an unanswered request; nothing to do after an Approve."""
        answer = ti.xcom_pull(task_ids="approve", map_indexes=0) if requests else None
        decision = fails_fast(settle_refusal)(requests, answer)
        if decision.get("promoted") is not False:
            raise AirflowSkipException(decision["reason"])
        return decision

    promote(request, approve.output) >> keep_champion(request)


promote_challenger()

"""boto3 against an SQS-compatible server, for tests written in Rust that must not use Rekey's
own code to read the queue.

    sqs_tool.py ENDPOINT create NAME        -> prints the queue URL
    sqs_tool.py ENDPOINT receive QUEUE_URL  -> prints a JSON list of message bodies (deleted)
"""

import json
import sys

import boto3


def client(endpoint):
    return boto3.client(
        "sqs",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def main():
    endpoint, command, arg = sys.argv[1:4]
    sqs = client(endpoint)
    if command == "create":
        print(sqs.create_queue(QueueName=arg)["QueueUrl"])
    elif command == "receive":
        bodies = []
        while True:
            res = sqs.receive_message(QueueUrl=arg, MaxNumberOfMessages=10, WaitTimeSeconds=1)
            messages = res.get("Messages", [])
            if not messages:
                break
            for m in messages:
                bodies.append(json.loads(m["Body"]))
                sqs.delete_message(QueueUrl=arg, ReceiptHandle=m["ReceiptHandle"])
        print(json.dumps(bodies))
    else:
        raise SystemExit(f"unknown command {command}")


if __name__ == "__main__":
    main()

// Registers (or updates) a Kafka Connect connector: PUT of a JSON file to the
// worker's REST API, retried until the worker answers 2xx (it refuses while it
// starts or rebalances). docker compose's one-shot connect-init runs it as a
// single-file program (`java RegisterConnector.java <url> <file>`), so that
// no image beyond the JDK one is needed; deploy/local/connect.sh uses curl.
package io.onceflow.connect;

import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Path;
import java.time.Duration;

public class RegisterConnector {
    public static void main(String[] args) throws Exception {
        if (args.length != 2) {
            System.err.println("usage: RegisterConnector <config URL> <connector JSON file>");
            System.exit(2);
        }
        HttpClient client = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(5)).build();
        HttpRequest put = HttpRequest.newBuilder(URI.create(args[0]))
                .header("Content-Type", "application/json")
                .PUT(HttpRequest.BodyPublishers.ofFile(Path.of(args[1])))
                .timeout(Duration.ofSeconds(30))
                .build();
        String last = "";
        for (int attempt = 1; attempt <= 60; attempt++) {
            try {
                HttpResponse<String> resp = client.send(put, HttpResponse.BodyHandlers.ofString());
                if (resp.statusCode() / 100 == 2) {
                    System.out.println("registered: " + args[0] + " (" + resp.statusCode() + ")");
                    return;
                }
                last = resp.statusCode() + " " + resp.body();
            } catch (java.io.IOException e) {
                last = e.toString();
            }
            Thread.sleep(2000);
        }
        System.err.println("could not register " + args[0] + ": " + last);
        System.exit(1);
    }
}

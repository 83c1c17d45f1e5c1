// uws_peer — the original chat's protocol on uWebSockets (issue 15's "fastest WebSocket server
// we know of"), written as a uWS user would: uWS::App without SSL or compression, a room is a
// pub/sub topic (every member subscribes at login; a room message is app.publish'ed to it, so
// the sender gets its copy too, and uWS drains each subscriber's pending messages in one corked
// pass), a map of nicknames to sockets for privates, nlohmann::json to parse and to serialize.
// The behaviour is bench/peers/ws_peer.mjs's: the same frames, the same things ignored.
//   uws_peer PORT        listens on 127.0.0.1:PORT, WebSocket at /talking
// Built outside the checkout by bench/peers/build_uws.sh, from fetched uWebSockets and uSockets
// sources; neither is part of this repository.
#include <App.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <pthread.h>
#include <signal.h>
#include <string>
#include <thread>
#include <unordered_map>

namespace {

struct Client {
    bool in = false;  // logged in
    std::string nick; // "" until then
    std::string room;
};

using Ws = uWS::WebSocket<false, true, Client>;

std::unordered_map<std::string, Ws *> users; // nickname -> socket
unsigned long long next_id = 1;

// String(msg.room ?? ''), as ws_peer makes a room name of whatever the login carries.
std::string room_name(const nlohmann::json &msg) {
    auto it = msg.find("room");
    if (it == msg.end() || it->is_null())
        return "";
    if (it->is_string())
        return it->get<std::string>();
    return it->dump();
}

long long now_ms() {
    using namespace std::chrono;
    return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

} // namespace

int main(int argc, char **argv) {
    int port = argc > 1 ? std::atoi(argv[1]) : 9090;

    // SIGINT and SIGTERM go to a thread of their own (sigwait), which asks the loop to close
    // everything; the loop then has nothing left and run() returns.
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, nullptr);

    uWS::App app;
    uWS::Loop *loop = uWS::Loop::get();

    app.ws<Client>("/talking", {
        .compression = uWS::DISABLED,
        .maxPayloadLength = 16 * 1024 * 1024,
        // ws neither times connections out nor pings them; the generator's idle connections
        // must stay open.
        .idleTimeout = 0,
        // 0: no limit. ws buffers whatever a slow reader has not taken yet; uWS's default
        // (64 KiB) drops messages past it, which the generator would fail as skipped deliveries.
        .maxBackpressure = 0,
        .closeOnBackpressureLimit = false,
        .resetIdleTimeoutOnSend = false,
        .sendPingsAutomatically = false,
        .message = [&app](Ws *ws, std::string_view data, uWS::OpCode op) {
            if (op != uWS::OpCode::TEXT)
                return;
            nlohmann::json msg = nlohmann::json::parse(data, nullptr, false);
            if (msg.is_discarded() || !msg.is_object())
                return;
            Client *c = ws->getUserData();
            auto type = msg.find("type");
            if (type != msg.end() && *type == "login") {
                auto nick = msg.find("nickname");
                if (c->in || nick == msg.end() || !nick->is_string())
                    return;
                std::string name = nick->get<std::string>();
                if (users.count(name))
                    return;
                c->in = true;
                c->nick = std::move(name);
                c->room = room_name(msg);
                users.emplace(c->nick, ws);
                ws->subscribe(c->room);
                return;
            }
            // ws_peer's `!ws.nick`: an empty nickname logs in (and gets its room's messages)
            // but sends nothing.
            if (c->nick.empty() || type == msg.end())
                return;
            auto body = msg.find("message");
            if (body == msg.end() || !body->is_object())
                return;
            auto text = body->find("text");
            if (text == body->end() || !text->is_string())
                return;
            unsigned long long id = next_id++; // ws_peer numbers every message it serializes
            bool room = *type == "room";
            auto to = msg.find("to");
            if ((!room && *type != "private") || to == msg.end() || !to->is_string())
                return; // ws_peer sends these nowhere
            nlohmann::ordered_json out;
            out["type"] = type->get_ref<const std::string &>();
            out["id"] = id;
            out["ts"] = now_ms();
            out["from"] = c->nick;
            out["to"] = to->get_ref<const std::string &>();
            out["message"]["text"] = text->get_ref<const std::string &>();
            std::string frame = out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
            if (room) {
                // To every subscriber of the room, the sender included.
                app.publish(to->get_ref<const std::string &>(), frame, uWS::OpCode::TEXT);
            } else {
                auto it = users.find(to->get_ref<const std::string &>());
                if (it == users.end())
                    return;
                it->second->send(frame, uWS::OpCode::TEXT);
                if (it->second != ws)
                    ws->send(frame, uWS::OpCode::TEXT);
            }
        },
        .close = [](Ws *ws, int, std::string_view) {
            // uWS unsubscribes a closed socket from its topics itself.
            Client *c = ws->getUserData();
            if (c->in)
                users.erase(c->nick);
        },
    });
    app.any("/*", [](auto *res, auto *) { res->writeStatus("404 Not Found")->end(); });

    // uSockets sets SO_REUSEPORT unless told otherwise: a stale process on the port would then
    // share the generator's connections without a word.
    bool listening = false;
    app.listen("127.0.0.1", port, LIBUS_LISTEN_EXCLUSIVE_PORT,
               [&](us_listen_socket_t *s) { listening = s != nullptr; });
    if (!listening) {
        std::fprintf(stderr, "uws_peer: cannot listen on 127.0.0.1:%d\n", port);
        return 1;
    }

    std::thread waiter([loop, &app, sigs] {
        int sig;
        sigwait(&sigs, &sig);
        loop->defer([&app] { app.close(); });
    });
    waiter.detach();
    app.run();
    return 0;
}

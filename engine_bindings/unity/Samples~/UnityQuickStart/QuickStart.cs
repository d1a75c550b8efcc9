using EngineBridge;
using EngineBridge.Unity;
using UnityEngine;

/// <summary>
/// Add this next to an <see cref="EngineBridgeRunner"/> in your first scene: it reads a config value, follows
/// its changes, and tracks a few events. Every call returns at once; callbacks arrive in the runner's Update.
/// </summary>
public sealed class QuickStart : MonoBehaviour
{
    private System.IDisposable configSubscription;
    private int maxLives = 3;

    private void Start()
    {
        var bridge = EngineBridgeRunner.Client;
        // Called with the current value at the next frame if it is known, then at every change.
        configSubscription = bridge.SubscribeConfig("max_lives", (key, value) =>
        {
            maxLives = bridge.GetInt("max_lives", 3);
            Debug.Log("max lives: " + maxLives + ", difficulty: " + bridge.GetString("difficulty", "normal"));
        });
        bridge.TrackProgression(ProgressionStatus.Start, "world01", "level01");
        bridge.TrackDesign("ui:scene_loaded", Time.realtimeSinceStartup);
    }

    private void Update()
    {
        if (Input.GetKeyDown(KeyCode.Space)) EngineBridgeRunner.Client.TrackDesign("input:jump");
    }

    public void OnLevelComplete(int score)
    {
        EngineBridgeRunner.Client.TrackProgression(ProgressionStatus.Complete, "world01", "level01", score: score);
        EngineBridgeRunner.Client.TrackResource(ResourceFlow.Source, "gold", 50, "reward", "level_complete");
    }

    public void OnPurchase(string receipt, string signature)
    {
        EngineBridgeRunner.Client.TrackBusiness("USD", 199, "gems", "small_pack", "shop");
        EngineBridgeRunner.Client.VerifyPurchase(
            new Purchase { Store = PurchaseStore.GooglePlay, Receipt = receipt, Signature = signature, PriceUsd = 1.99 },
            reply => Debug.Log(reply.Ok ? "purchase verified" : "purchase not verified: " + reply.ErrorCode));
    }

    private void OnDestroy()
    {
        if (configSubscription != null) configSubscription.Dispose();
    }
}
